#!/usr/bin/env python3
"""Tests of bench/icount.py's budget check, without valgrind: the figures
are made up, or the budgets file's own with a regression added, so that
the path that fails CI is itself tested (scripts/test runs this first)."""

import copy
import importlib.util
import json
import os
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("icount", os.path.join(HERE, "icount.py"))
icount = importlib.util.module_from_spec(spec)
spec.loader.exec_module(icount)


def case(per_call, **stages):
    return {"per_call": per_call, "stages": stages}


class Check(unittest.TestCase):
    def budgets(self):
        return {"cases": {"same-json": case(200_000, decode=12_000, writer=10_000)}}

    def test_within_the_budgets_is_ok(self):
        lines, ok = icount.check({"same-json": case(205_000, decode=12_500, writer=13_000)}, self.budgets())
        self.assertTrue(ok, lines)
        self.assertEqual(lines, ["same-json: 205,000 per call, budget 200,000: ok"])

    def test_a_stage_past_its_margin_fails_and_is_named(self):
        lines, ok = icount.check({"same-json": case(214_000, decode=24_000, writer=10_000)}, self.budgets())
        self.assertFalse(ok)
        self.assertEqual(lines[0], "same-json: 214,000 per call, budget 200,000: OVER")
        self.assertEqual(len(lines), 2, lines)
        self.assertIn("stage decode grew 12,000 -> 24,000 per call (+100%; allowed +5%)", lines[1])

    def test_the_whole_call_past_its_margin_fails(self):
        lines, ok = icount.check({"same-json": case(231_000, decode=12_000, writer=10_000)}, self.budgets())
        self.assertFalse(ok)
        self.assertIn("the whole call grew 200,000 -> 231,000", lines[1])

    def test_growth_below_the_floor_is_noise_whatever_its_share(self):
        # +50% of a small stage, but only 1,000 instructions.
        budgets = {"cases": {"c": case(100_000, policy=2_000)}}
        lines, ok = icount.check({"c": case(100_000, policy=3_000)}, budgets)
        self.assertTrue(ok, lines)

    def test_the_writer_has_its_own_margin_and_a_file_may_set_margins(self):
        got = {"same-json": case(200_000, decode=12_000, writer=13_000)}
        self.assertTrue(icount.check(got, self.budgets())[1])
        budgets = self.budgets()
        budgets["margins"] = {"writer": 0.10}
        lines, ok = icount.check(got, budgets)
        self.assertFalse(ok)
        self.assertIn("stage writer grew", lines[1])

    def test_a_case_without_a_budget_is_reported_not_failed(self):
        lines, ok = icount.check({"new-case": case(1, decode=1)}, self.budgets())
        self.assertTrue(ok)
        self.assertEqual(lines, ["new-case: 1 per call (no budget)"])

    def test_a_second_run_keeps_each_figures_lower_value(self):
        a = {"c": case(10, x=5, y=1)}
        b = {"c": case(8, x=7, y=1)}
        self.assertEqual(icount.lower(a, b), {"c": case(8, x=5, y=1)})


class TheCheckedInBudgets(unittest.TestCase):
    """The budgets CI checks, against a deliberate regression: an extra
    decode of every request body (the one BENCHMARKS.md shows)."""

    def setUp(self):
        with open(os.path.join(HERE, "icount-budgets.json")) as f:
            self.budgets = json.load(f)

    def test_every_case_passes_at_its_own_budget(self):
        lines, ok = icount.check(copy.deepcopy(self.budgets["cases"]), self.budgets)
        self.assertTrue(ok, lines)

    def test_a_doubled_decode_fails_every_case_that_decodes(self):
        got = copy.deepcopy(self.budgets["cases"])
        for r in got.values():
            extra = r["stages"]["decode"]
            r["stages"]["decode"] += extra
            r["stages"]["admit"] += extra
            r["per_call"] += extra
        lines, ok = icount.check(got, self.budgets)
        self.assertFalse(ok)
        for name, r in self.budgets["cases"].items():
            over = any(line.startswith(f"{name}: ") and line.endswith("OVER") for line in lines)
            self.assertEqual(over, r["stages"]["decode"] > icount.MIN_GROWTH, name)
        self.assertTrue(any("stage decode grew" in line for line in lines))


if __name__ == "__main__":
    unittest.main()
