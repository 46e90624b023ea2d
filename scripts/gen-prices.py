#!/usr/bin/env python3
"""Generate crates/switchyard/data/prices.json from LiteLLM's price table.

Usage:
    scripts/gen-prices.py PATH/TO/model_prices_and_context_window_backup.json LITELLM_VERSION
        [--date YYYY-MM-DD] [--genai-prices-version VERSION] [--out PATH]

Get the JSON from the LiteLLM wheel (no network access needed beyond PyPI):

    pip download --no-deps litellm==<version> -d /tmp/prices
    cd /tmp/prices && python3 -m zipfile -e litellm-*.whl ll
    scripts/gen-prices.py ll/litellm/model_prices_and_context_window_backup.json <version>

Python 3.11+, standard library only. Also writes LICENSE-litellm-prices next to the
output file, since the table is derived from LiteLLM (MIT).

Selection rules:
  * only Switchyard providers (see PROVIDERS); keys become "<provider>/<model id>",
    where the model id is what that provider's own API expects (LiteLLM routing
    prefixes such as "gemini/" or "together_ai/" are stripped);
  * modes chat, completion, responses (text-generation models) and embedding;
  * skipped: entries without token prices or priced 0/0 (placeholders, free previews),
    fine-tune placeholders (ft:), size/quality/region-prefixed variants,
    TTS/transcription/realtime/music models, LiteLLM's generic size-bucket fallbacks;
  * when LiteLLM lists the same model both with and without its routing prefix,
    the prefixed (provider-specific) entry wins;
  * tiered / long-context pricing: only the base (first) tier is kept; priority,
    flex and batch rates are ignored.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from decimal import Decimal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "crates" / "switchyard" / "data" / "prices.json"

# Switchyard provider -> (LiteLLM litellm_provider values, LiteLLM key prefix,
#                         model ids may contain "/", prefix required)
PROVIDERS: dict[str, tuple[frozenset[str], str, bool, bool]] = {
    "openai": (frozenset({"openai", "text-completion-openai"}), "openai/", False, False),
    "anthropic": (frozenset({"anthropic"}), "anthropic/", False, False),
    "google": (frozenset({"gemini"}), "gemini/", False, False),
    "mistral": (frozenset({"mistral"}), "mistral/", False, False),
    "deepseek": (frozenset({"deepseek"}), "deepseek/", False, False),
    "groq": (frozenset({"groq"}), "groq/", True, False),
    "xai": (frozenset({"xai"}), "xai/", False, False),
    "moonshot": (frozenset({"moonshot"}), "moonshot/", False, False),
    "dashscope": (frozenset({"dashscope"}), "dashscope/", False, False),
    # Unprefixed together_ai keys are LiteLLM's size-bucket fallbacks
    # ("together-ai-8.1b-21b"), not model ids.
    "together": (frozenset({"together_ai"}), "together_ai/", True, True),
    # Enterprise kinds, priced by the model id as served: Bedrock's
    # inference-profile prefixes ("us.", "eu.", "global.") kept; region- and
    # tier-scoped variants ("bedrock/us-gov-east-1/...", "azure/eu/...")
    # skipped. Azure's model is a deployment name: priced when it is named
    # after its model, as it usually is.
    "azure": (frozenset({"azure"}), "azure/", False, False),
    # Region-scoped Bedrock entries ("bedrock/eu-west-2/<model>", regional
    # premiums) are kept as "bedrock/<region>/<model>": a provider in that
    # region is priced by them first.
    "bedrock": (frozenset({"bedrock", "bedrock_converse"}), "bedrock/", True, False),
    "vertex": (
        frozenset({"vertex_ai-language-models", "vertex_ai-anthropic_models", "vertex_ai-embedding-models"}),
        "vertex_ai/",
        False,
        False,
    ),
}

AWS_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")

LITELLM_TO_SWITCHYARD = {lp: sy for sy, (lps, *_rest) in PROVIDERS.items() for lp in lps}

TEXT_MODES = {"chat", "completion", "responses"}
EMBEDDING_MODES = {"embedding"}

# Models that LiteLLM files under "chat" but that are not text chat models.
SKIP_NAME = re.compile(r"(^|[-_/.])(tts|transcribe|whisper|realtime|lyria|imagen|veo|sora)([-_/.]|$)")

# LiteLLM keys that do not correspond to a model id the provider's API accepts.
SKIP_KEYS = frozenset({"google/gemini-gemma-2-27b-it", "google/gemini-gemma-2-9b-it"})

LITELLM_MIT_NOTICE = """\
MIT License

Copyright (c) 2023 Berri AI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def per_million(per_token: object) -> Decimal | None:
    """USD/token -> USD/million tokens, 6 significant digits, no float noise."""
    if isinstance(per_token, bool) or not isinstance(per_token, (int, float)):
        return None
    if per_token < 0:
        return None
    return Decimal(f"{per_token * 1_000_000:.6g}").normalize()


def fmt(d: Decimal) -> str:
    s = format(d, "f")
    if "." not in s:
        s += ".0"
    return s


def base_tier(entry: dict) -> dict:
    """Fields from the first tier of `tiered_pricing`, when the flat fields are absent."""
    tiers = entry.get("tiered_pricing")
    if not isinstance(tiers, list) or not tiers:
        return {}
    def start(t: dict) -> float:
        r = t.get("range")
        return r[0] if isinstance(r, list) and r else 0
    tiers = sorted((t for t in tiers if isinstance(t, dict)), key=start)
    return tiers[0] if tiers else {}


def field(entry: dict, name: str) -> object:
    v = entry.get(name)
    if v is None:
        v = base_tier(entry).get(name)
    return v


def model_id(key: str, prefix: str, slash_ok: bool, prefix_required: bool) -> tuple[str, bool] | None:
    """Strip LiteLLM's routing prefix; returns (id, was_prefixed) or None to skip."""
    prefixed = key.startswith(prefix)
    if prefixed:
        mid = key[len(prefix):]
    elif prefix_required:
        return None
    else:
        mid = key
    if not mid or mid.startswith("ft:") or ":ft-" in mid:
        return None
    if prefix == "bedrock/" and "/" in mid and not AWS_REGION.match(mid.split("/", 1)[0]):
        return None
    if "/" in mid and not slash_ok:
        # size/quality/region-prefixed variants ("low/1024-x-1024/...", "us/...")
        return None
    if not prefixed and "/" in mid:
        return None
    return mid, prefixed


def convert(entry: dict) -> dict[str, object] | None:
    mode = entry.get("mode")
    inp = per_million(field(entry, "input_cost_per_token"))
    out = per_million(field(entry, "output_cost_per_token"))
    if mode in EMBEDDING_MODES:
        if inp is None or inp == 0:
            return None
        out = Decimal(0)
    elif mode in TEXT_MODES:
        if inp is None or out is None or (inp == 0 and out == 0):
            return None
    else:
        return None
    row: dict[str, object] = {"input": inp, "output": out}
    # A zero cache price in LiteLLM means "not billed separately" (e.g. DeepSeek has
    # no cache-creation charge), so leave it out rather than pricing tokens at 0.
    cached = per_million(field(entry, "cache_read_input_token_cost"))
    if cached:
        row["cached_input"] = cached
    write = per_million(field(entry, "cache_creation_input_token_cost"))
    if write:
        row["cache_write"] = write
    mot = entry.get("max_output_tokens")
    if isinstance(mot, (int, float)) and not isinstance(mot, bool) and mot > 0 and mode not in EMBEDDING_MODES:
        row["max_output_tokens"] = int(mot)
    return row


def select(data: dict) -> dict[str, dict[str, object]]:
    # Pass 1: map every candidate entry to its Switchyard key.
    candidates: list[tuple[str, bool, dict]] = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or key == "sample_spec":
            continue
        provider = LITELLM_TO_SWITCHYARD.get(entry.get("litellm_provider"))
        if provider is None:
            continue
        _lps, prefix, slash_ok, prefix_required = PROVIDERS[provider]
        got = model_id(key, prefix, slash_ok, prefix_required)
        if got is None:
            continue
        mid, prefixed = got
        k = f"{provider}/{mid}"
        if SKIP_NAME.search(mid.lower()) or k in SKIP_KEYS:
            continue
        candidates.append((k, prefixed, entry))
    # When LiteLLM has a provider-prefixed entry ("gemini/x"), its unprefixed twin
    # ("x") is a legacy copy; the prefixed one is authoritative even if it is skipped.
    has_prefixed = {k for k, prefixed, _ in candidates if prefixed}
    chosen: dict[str, dict[str, object]] = {}
    for k, prefixed, entry in candidates:
        if not prefixed and k in has_prefixed:
            continue
        row = convert(entry)
        if row is not None:
            chosen[k] = row
    return {k: chosen[k] for k in sorted(chosen)}


def render(models: dict[str, dict[str, object]], version: str, date: str, genai_version: str | None) -> str:
    """The table as JSON, one model a line: the gateway reads it at start-up
    with serde_json, which allocates little more than the table itself (a
    TOML table of this size took 3.6 MB to parse)."""
    about = [
        "Switchyard price table: USD per million tokens.",
        f"Generated by scripts/gen-prices.py from LiteLLM {version} model_prices_and_context_window_backup.json",
        f"(https://github.com/BerriAI/litellm, MIT licence, notice below) on {date}.",
    ]
    if genai_version:
        about.append(f"Cross-checked against genai-prices {genai_version} where both list a model.")
    about += [
        "Do not edit by hand; re-run the script. Base-tier list prices only (no batch,",
        "priority/flex or long-context surcharges).",
        "  input / output     USD per million input / output tokens (embeddings: output = 0)",
        "  cached_input       USD per million cache-read input tokens (optional)",
        "  cache_write        USD per million cache-creation input tokens (optional, Anthropic)",
        "  max_output_tokens  provider output-token limit (optional)",
    ]
    notice = LITELLM_MIT_NOTICE.splitlines()

    def strings(items: list[str]) -> str:
        return ",\n".join(f"    {json.dumps(x, ensure_ascii=True)}" for x in items)

    rows = []
    for key, row in models.items():
        fields = []
        for name in ("input", "output", "cached_input", "cache_write", "max_output_tokens"):
            if name in row:
                v = row[name]
                fields.append(f'"{name}": {fmt(v) if isinstance(v, Decimal) else v}')
        rows.append(f"    {json.dumps(key, ensure_ascii=True)}: {{{', '.join(fields)}}}")
    return (
        "{\n"
        f'  "about": [\n{strings(about)}\n  ],\n'
        f'  "licence_notice": [\n{strings(notice)}\n  ],\n'
        f'  "version": "{date}-litellm-{version}",\n'
        '  "models": {\n' + ",\n".join(rows) + "\n  }\n}\n"
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, help="litellm/model_prices_and_context_window_backup.json")
    ap.add_argument("version", help="LiteLLM version the JSON came from")
    ap.add_argument("--date", default=dt.date.today().isoformat(), help="generation date (YYYY-MM-DD)")
    ap.add_argument("--genai-prices-version", help="note a genai-prices cross-check in the header")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    dt.date.fromisoformat(args.date)
    if not re.fullmatch(r"[0-9A-Za-z.+-]+", args.version):
        ap.error("bad version string")

    data = json.loads(args.json.read_text(encoding="utf-8"))
    models = select(data)
    if not models:
        print("no models selected", file=sys.stderr)
        return 1

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(models, args.version, args.date, args.genai_prices_version), encoding="utf-8")
    lic = args.out.parent / "LICENSE-litellm-prices"
    lic.write_text(
        f"{args.out.name} in this directory is derived from LiteLLM {args.version}\n"
        "(litellm/model_prices_and_context_window_backup.json, https://github.com/BerriAI/litellm),\n"
        "which is distributed under the following licence:\n\n" + LITELLM_MIT_NOTICE,
        encoding="utf-8",
    )

    counts: dict[str, int] = {}
    for k in models:
        p = k.split("/", 1)[0]
        counts[p] = counts.get(p, 0) + 1
    print(f"wrote {len(models)} models to {args.out}", file=sys.stderr)
    for p in PROVIDERS:
        print(f"  {p:10} {counts.get(p, 0)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
