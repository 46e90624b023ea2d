#!/usr/bin/env python3
"""Turns the rows bench/run.sh measured into bench/results/latest.{json,md}.

Standard library only. Every Switchyard row is reported against the floor
(the minimal hyper proxy) measured in the same run: latency as time *added*
over going to the mock directly, next to the floor's added time, and CPU per
request as a ratio to the floor's (and, for streams, to nginx's).
"""

import argparse
import datetime
import json
import os
import platform
import sys

# The goal of issue 17 (what "next to the floor" means; issue 7's first
# round had p50 +0.10 ms, time to first byte +0.2 ms and idle RSS 20 MB).
GOAL = {
    "p50_over_floor_ms": 0.05,
    "p99_over_floor_ms": 0.30,
    "cpu_x_floor": 2.5,
    "cross_cpu_x_floor": 3.0,
    "stream_cpu_x_nginx": 2.0,
    "cross_stream_cpu_x_nginx": 3.0,
    "paced_us_per_event": 40.0,
    "ttft_added_ms": 0.10,
    "idle_rss_mb": 12.0,
    "peak_rss_mb": 64.0,
    "growth_mb": 1.0,
}

# Cases whose request is translated to another dialect (their own, looser
# CPU goals).
CROSS = {"oai-to-ant", "ant-to-oai", "resp-to-ant"}

CASE_NAMES = {
    "same": "same dialect (OpenAI in, OpenAI-compatible out)",
    "oai-to-ant": "cross (OpenAI in, Anthropic out)",
    "ant-to-oai": "cross (Anthropic in, OpenAI-compatible out)",
    "cache-hit": "cache hit (OpenAI in, answered from the cache)",
    "resp-same": "Responses API, same dialect (Responses in, sent natively to an OpenAI-compatible `responses = true` upstream; `store` on)",
    "resp-to-ant": "Responses API, cross (Responses in, Anthropic out; `store` on)",
    "tool-read": "HTTP tool proxy, a read (GET through /tools/bench/…, the tool's credential injected); compared with GETs on the mock",
    "same-again, same-again-2": "same dialect, repeated twice back to back at the end (RSS growth)",
    "paced": "OpenAI in and out, 20 chunks paced by the mock's timer (~2 ms apart in practice); compared with the floor behind the same paced mock",
}


def machine():
    def first(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    osname = "unknown"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    mem = first("/proc/meminfo", "MemTotal")
    try:
        mem = f"{int(mem.split()[0]) / 1048576:.1f} GiB"
    except (ValueError, IndexError):
        pass
    return {
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "os": osname,
        "memory": mem,
    }


def fmt(v, digits=3):
    return "–" if v is None else f"{v:.{digits}f}"


def signed(v, digits=3):
    return "–" if v is None else f"{v:+.{digits}f}"


def ratio(a, b):
    return None if a is None or not b else a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", required=True)
    ap.add_argument("--duration", type=int, required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--procs", required=True)
    ap.add_argument("--pinning", required=True)
    ap.add_argument("--chunks", type=int, required=True)
    ap.add_argument("--paced-delay-us", type=int, required=True)
    ap.add_argument("--measure-seconds", type=int, required=True)
    ap.add_argument("--total-seconds", type=int, required=True)
    ap.add_argument("--version", action="append", default=[])
    ap.add_argument("--load", action="append", default=[])
    a = ap.parse_args()

    with open(a.rows) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        sys.exit("report.py: no rows were measured")
    procs = json.loads(a.procs)
    versions = dict(v.split("=", 1) for v in a.version)
    events_per_stream = a.chunks + 3  # N content chunks, finish, usage, [DONE]

    refs = {}
    for r in rows:
        if r["target"] in ("direct", "floor", "nginx") and r["case"] == r["target"]:
            refs[(r["target"], r["upstream"], r["stream"], r["conns"])] = r
        if r["case"] == "paced":
            refs[(r["target"], "paced", True, r["conns"])] = r

    # Reference rows: added over direct.
    for r in rows:
        if r["target"] in ("floor", "nginx"):
            up = "paced" if r["case"] == "paced" else r["upstream"]
            d = refs.get(("direct", up, r["stream"], r["conns"]))
            if d:
                r["added_p50_ms"] = r["p50_ms"] - d["p50_ms"]
                r["added_p99_ms"] = r["p99_ms"] - d["p99_ms"]
                if r["stream"] and r.get("ttfb_p50_ms") is not None:
                    r["added_ttfb_p50_ms"] = r["ttfb_p50_ms"] - d["ttfb_p50_ms"]

    # Switchyard rows against direct, the floor and nginx.
    comparisons = []
    for r in rows:
        if r["target"] != "switchyard":
            continue
        up = "paced" if r["case"] == "paced" else (r["upstream"] if r["upstream"] != "none" else "openai")
        key = (up, r["stream"], r["conns"])
        d, fl, nx = (refs.get((t,) + key) for t in ("direct", "floor", "nginx"))
        c = {"id": r["id"], "case": r["case"], "stream": r["stream"], "conns": r["conns"], "reference_upstream": up}
        if d and fl:
            c["added_p50_ms"] = r["p50_ms"] - d["p50_ms"]
            c["floor_added_p50_ms"] = fl["p50_ms"] - d["p50_ms"]
            c["p50_over_floor_ms"] = r["p50_ms"] - fl["p50_ms"]
            c["added_p99_ms"] = r["p99_ms"] - d["p99_ms"]
            c["floor_added_p99_ms"] = fl["p99_ms"] - d["p99_ms"]
            c["p99_over_floor_ms"] = r["p99_ms"] - fl["p99_ms"]
            if r["stream"]:
                c["added_ttfb_p50_ms"] = r["ttfb_p50_ms"] - d["ttfb_p50_ms"]
                c["floor_added_ttfb_p50_ms"] = fl["ttfb_p50_ms"] - d["ttfb_p50_ms"]
                c["added_ttfb_p99_ms"] = r["ttfb_p99_ms"] - d["ttfb_p99_ms"]
            c["cpu_us_per_req"] = r["cpu_us_per_req"]
            c["floor_cpu_us_per_req"] = fl["cpu_us_per_req"]
            c["cpu_x_floor"] = ratio(r["cpu_us_per_req"], fl["cpu_us_per_req"])
            c["rps_x_floor"] = ratio(r["rps"], fl["rps"])
        if nx:
            c["nginx_cpu_us_per_req"] = nx["cpu_us_per_req"]
            c["cpu_x_nginx"] = ratio(r["cpu_us_per_req"], nx["cpu_us_per_req"])
        if r["stream"]:
            c["cpu_us_per_event"] = r["cpu_us_per_req"] / events_per_stream
        r.update({k: v for k, v in c.items() if k not in ("id", "case", "stream", "conns")})
        comparisons.append(c)

    # Goal checks.
    goals = []

    def check(name, goal, measured, ok, note=""):
        goals.append({"check": name, "goal": goal, "measured": measured, "met": ok, "note": note})

    by_id = {r["id"]: r for r in rows}
    for c in comparisons:
        if c["case"].startswith("same-again") or c["case"] == "paced" or "p50_over_floor_ms" not in c:
            continue
        label = f"{c['case']}, {'stream' if c['stream'] else 'non-stream'}"
        if c["conns"] == 1 and not c["stream"]:
            v = c["p50_over_floor_ms"]
            check(f"added p50 at 1 connection ({label})", f"≤ floor + {GOAL['p50_over_floor_ms']:.2f} ms",
                  f"floor {signed(v)} ms", v <= GOAL["p50_over_floor_ms"],
                  "" if v <= GOAL["p50_over_floor_ms"] else f"misses by {v - GOAL['p50_over_floor_ms']:.3f} ms")
            v = c["p99_over_floor_ms"]
            check(f"added p99 at 1 connection ({label})", f"≤ floor + {GOAL['p99_over_floor_ms']:.2f} ms",
                  f"floor {signed(v)} ms", v <= GOAL["p99_over_floor_ms"],
                  "" if v <= GOAL["p99_over_floor_ms"] else f"misses by {v - GOAL['p99_over_floor_ms']:.3f} ms")
        cross = c["case"] in CROSS
        if c["conns"] == 32 and not c["stream"] and c.get("cpu_x_floor") is not None:
            v, goal = c["cpu_x_floor"], GOAL["cross_cpu_x_floor" if cross else "cpu_x_floor"]
            check(f"CPU per request at 32 connections ({label})", f"≤ {goal}× floor",
                  f"{v:.2f}× floor ({c['cpu_us_per_req']:.0f} µs vs {c['floor_cpu_us_per_req']:.0f} µs)",
                  v <= goal,
                  "" if v <= goal else f"misses by {v / goal:.2f}× "
                  f"({c['cpu_us_per_req'] - goal * c['floor_cpu_us_per_req']:.0f} µs over)")
        if c["conns"] == 32 and c["stream"]:
            goal = GOAL["cross_stream_cpu_x_nginx" if cross else "stream_cpu_x_nginx"]
            if c.get("cpu_x_nginx") is not None:
                v = c["cpu_x_nginx"]
                check(f"CPU per {a.chunks}-chunk stream at 32 connections ({label})", f"≤ {goal}× nginx",
                      f"{v:.2f}× nginx ({c['cpu_us_per_req']:.0f} µs vs {c['nginx_cpu_us_per_req']:.0f} µs)",
                      v <= goal,
                      "" if v <= goal else f"misses by {v / goal:.2f}×")
            else:
                check(f"CPU per {a.chunks}-chunk stream ({label})", f"≤ {goal}× nginx",
                      "nginx not measured", None)
        if c["conns"] == 1 and c["stream"] and c.get("added_ttfb_p50_ms") is not None:
            v = c["added_ttfb_p50_ms"]
            check(f"added time to first byte p50 at 1 connection ({label})", f"≤ {GOAL['ttft_added_ms']} ms",
                  f"{v:.3f} ms (floor adds {c['floor_added_ttfb_p50_ms']:.3f})", v <= GOAL["ttft_added_ms"],
                  "" if v <= GOAL["ttft_added_ms"] else f"misses by {v - GOAL['ttft_added_ms']:.3f} ms")
    paced = next((c for c in comparisons if c["case"] == "paced"), None)
    if paced:
        v = paced["cpu_us_per_event"]
        direct_paced = refs.get(("direct", "paced", True, 32))
        gap = f", ~{direct_paced['p50_ms'] / (events_per_stream - 1):.1f} ms apart" if direct_paced else ""
        base = by_id.get("switchyard-same-json-c32")
        above = ""
        if base:
            above = (f"; {(paced['cpu_us_per_req'] - base['cpu_us_per_req']) / events_per_stream:.1f} µs per event "
                     f"above a non-streamed request's {base['cpu_us_per_req']:.0f} µs")
        check(f"paced stream CPU per SSE event ({events_per_stream} events{gap}, 32 connections)",
              f"≤ {GOAL['paced_us_per_event']:.0f} µs", f"{v:.1f} µs{above}", v <= GOAL["paced_us_per_event"],
              "" if v <= GOAL["paced_us_per_event"] else f"misses by {v - GOAL['paced_us_per_event']:.1f} µs")
    else:
        check("paced stream CPU per SSE event", f"≤ {GOAL['paced_us_per_event']:.0f} µs", "not measured in this mode", None)
    sy = procs.get("switchyard", {})
    v = sy.get("idle_rss_kb", 0) / 1024
    check("idle RSS", f"≤ {GOAL['idle_rss_mb']:.0f} MB", f"{v:.1f} MB", v <= GOAL["idle_rss_mb"],
          "" if v <= GOAL["idle_rss_mb"] else f"misses by {v - GOAL['idle_rss_mb']:.1f} MB")
    v = sy.get("peak_rss_kb", 0) / 1024
    check("peak RSS (whole run, up to 32 connections)", f"≤ {GOAL['peak_rss_mb']:.0f} MB", f"{v:.1f} MB",
          v <= GOAL["peak_rss_mb"], "" if v <= GOAL["peak_rss_mb"] else f"misses by {v - GOAL['peak_rss_mb']:.1f} MB")
    first = by_id.get("switchyard-same-json-c32")
    again, again2 = by_id.get("switchyard-same-json-c32-again"), by_id.get("switchyard-same-json-c32-again-2")
    if again and again2:
        v = (again2["rss_after_kb"] - again["rss_after_kb"]) / 1024
        early = f"; {(again['rss_after_kb'] - first['rss_after_kb']) / 1024:+.1f} MB from the first such row to the repeat after the other cases" if first else ""
        check("RSS growth between identical runs (same dialect, 32 connections, two runs back to back at the end)",
              f"≤ {GOAL['growth_mb']:.0f} MB", f"{v:+.1f} MB{early}", v <= GOAL["growth_mb"],
              "" if v <= GOAL["growth_mb"] else f"grew {v:.1f} MB")
    else:
        check("RSS growth between identical runs", "none", "not measured in this mode", None)

    result = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": a.command,
        "mode": a.mode,
        "seconds_per_row": a.duration,
        "measure_seconds": a.measure_seconds,
        "total_seconds": a.total_seconds,
        "pinning": a.pinning,
        "stream_chunks": a.chunks,
        "stream_events": events_per_stream,
        "machine": machine(),
        "loadavg_before_after": a.load,
        "versions": versions,
        "processes": procs,
        "goal": GOAL,
        "rows": rows,
        "comparisons": comparisons,
        "goal_checks": goals,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "latest.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, "latest.md"), "w") as f:
        f.write(markdown(result, refs))


def kind(r):
    return f"{'stream' if r['stream'] else 'json'}"


def markdown(res, refs):
    m = res["machine"]
    v = res["versions"]
    out = []
    w = out.append
    w(f"# Switchyard benchmark ({res['mode']} run)\n")
    w(f"`{res['command']}` — {res['generated']}; {res['seconds_per_row']} s per row after a 0.5 s warm-up; "
      f"measuring took {res['measure_seconds']} s, the whole run {res['total_seconds']} s.\n")
    w(f"Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory']}, kernel {m['kernel']}, {m['os']}. "
      f"{res['pinning']}. Load average (1/5/15 min) before measuring: {res['loadavg_before_after'][0] if res['loadavg_before_after'] else '?'}, "
      f"after: {res['loadavg_before_after'][-1] if res['loadavg_before_after'] else '?'} (anything above ~1 means other work shared the CPUs).\n")
    w("Versions: " + ", ".join(f"{k} `{val}`" for k, val in v.items()) + ".\n")
    w(f"Requests: a realistic chat call (system + user message, `max_tokens`, `temperature`). "
      f"Answers: the mock's JSON, or a stream of {res['stream_chunks']} content chunks back to back "
      f"({res['stream_events']} SSE events with finish, usage and `[DONE]`; Anthropic: the full event sequence). "
      f"Latency is what oha sees (request sent → last byte); TTFB is to the first body byte. "
      f"CPU is the proxy's utime+stime over the run divided by the requests served "
      f"(for *direct*, the mock's own).\n")

    w("## Switchyard against the floor\n")
    w("Switchyard runs with keys required (a key with rpm/tpm limits and a budget), prices for the models "
      "(cost on every request), the default log mode (`metadata`, spooled and written to SQLite) and the cache "
      "used only where the case says so. *added* = this path's latency minus going to the mock directly; the "
      "floor's own added time is in brackets, and **Δ** is Switchyard's extra over the floor. Cross-dialect "
      "rows are compared with the floor and direct rows of the upstream's dialect (the mock does the same work).\n")
    w("| case | answer | conns | added p50 ms (floor) | Δ p50 | added p99 ms (floor) | Δ p99 | added TTFB p50 ms (floor) | CPU µs/req (floor) | × floor | × nginx | req/s × floor |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res["rows"]:
        if r["target"] != "switchyard" or "added_p50_ms" not in r:
            continue
        ttfb = "–"
        if r["stream"] and r.get("added_ttfb_p50_ms") is not None:
            ttfb = f"{r['added_ttfb_p50_ms']:.3f} ({r['floor_added_ttfb_p50_ms']:.3f})"
        w(f"| {r['case']} | {kind(r)} | {r['conns']} "
          f"| {r['added_p50_ms']:.3f} ({r['floor_added_p50_ms']:.3f}) | **{signed(r['p50_over_floor_ms'])}** "
          f"| {r['added_p99_ms']:.3f} ({r['floor_added_p99_ms']:.3f}) | **{signed(r['p99_over_floor_ms'])}** "
          f"| {ttfb} | {r['cpu_us_per_req']:.0f} ({r['floor_cpu_us_per_req']:.0f}) | **{r['cpu_x_floor']:.2f}×** "
          f"| {fmt(r.get('cpu_x_nginx'), 2) + '×' if r.get('cpu_x_nginx') is not None else '–'} "
          f"| {r['rps_x_floor']:.2f} |")
    w("")
    w("Cases: " + "; ".join(f"*{k}*: {val}" for k, val in CASE_NAMES.items()) + ".\n")

    w("## Goal (issue 17)\n")
    w("| check | goal | measured | met |")
    w("|---|---|---|---|")
    for g in res["goal_checks"]:
        met = "n/a" if g["met"] is None else ("yes" if g["met"] else f"**no** — {g['note']}")
        w(f"| {g['check']} | {g['goal']} | {g['measured']} | {met} |")
    w("")

    w("## All rows\n")
    w("Absolute figures, for reading the comparisons above; *added* is over *direct* with the same upstream, stream mode and connections.\n")
    w("| row | req/s | p50 ms | p99 ms | TTFB p50 ms | TTFB p99 ms | added p50 ms | added p99 ms | CPU µs/req | RSS after MB |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in res["rows"]:
        ttfb50 = fmt(r.get("ttfb_p50_ms")) if r["stream"] else "–"
        ttfb99 = fmt(r.get("ttfb_p99_ms")) if r["stream"] else "–"
        w(f"| {r['id']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {ttfb50} | {ttfb99} "
          f"| {fmt(r.get('added_p50_ms'))} | {fmt(r.get('added_p99_ms'))} | {r['cpu_us_per_req']:.1f} "
          f"| {r['rss_after_kb'] / 1024:.1f} |")
    w("")

    w("## Memory\n")
    w("| process | idle RSS MB | of it allocated (RssAnon) MB | of it mapped files (RssFile) MB | RSS at end MB | peak RSS (VmHWM) MB |")
    w("|---|---:|---:|---:|---:|---:|")
    for name, p in res["processes"].items():
        anon, file = p.get("idle_anon_kb"), p.get("idle_file_kb")
        w(f"| {name} | {p['idle_rss_kb'] / 1024:.1f} | {fmt(anon / 1024 if anon is not None else None, 1)} "
          f"| {fmt(file / 1024 if file is not None else None, 1)} | {p['rss_end_kb'] / 1024:.1f} | {p['peak_rss_kb'] / 1024:.1f} |")
    w("")
    w("nginx: master + its one worker. Idle: after start-up, before any load. RssFile is the binary's and "
      "libraries' pages mapped from the page cache (shared and reclaimable); RssAnon what the process allocated.\n")
    return "\n".join(out)


if __name__ == "__main__":
    main()
