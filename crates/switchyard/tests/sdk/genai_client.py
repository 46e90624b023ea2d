#!/usr/bin/env python3
"""Gemini API conformance: drive a running Switchyard gateway with Google's
official `google-genai` Python SDK, against the deterministic mock
upstreams behind it (see conformance.py for their contract), through every
provider kind, with the SDK's default API version (v1) and v1beta.

    python genai_client.py --base-url http://127.0.0.1:PORT --api-key sk-sy-... \
        --models google/gemini-test,anthropic/claude-test,openai/gpt-test,compat/local-test

Each case prints PASS/FAIL; the last line is a JSON summary. Exit 1 if any
case failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import traceback
from typing import Any, Callable

from google import genai
from google.genai import errors, types

KIND_BY_PROVIDER = {"openai": "openai", "compat": "openai", "anthropic": "anthropic", "google": "gemini"}
results: list[tuple[str, bool, str]] = []


def case(name: str, fn: Callable[[], Any]) -> None:
    try:
        fn()
        results.append((name, True, ""))
        print(f"PASS {name}", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        detail = f"{type(e).__name__}: {e}"
        results.append((name, False, detail))
        print(f"FAIL {name}: {detail}", flush=True)
        traceback.print_exc(file=sys.stderr)


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather in a city",
    parameters=types.Schema(
        type="OBJECT", properties={"city": types.Schema(type="STRING", description="City")}, required=["city"]
    ),
)
calls: list[str] = []


def get_weather(city: str) -> str:
    """Current weather in a city."""
    calls.append(city)
    return f"sunny in {city}"


def cases(client: genai.Client, label: str, model: str) -> None:
    hello = f"Hello from {KIND_BY_PROVIDER[model.split('/')[0]]}. You said: Say hi"

    def generate() -> None:
        r = client.models.generate_content(
            model=model,
            contents="Say hi",
            config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2, max_output_tokens=64),
        )
        expect(r.text == hello, f"text {r.text!r}")
        expect(r.usage_metadata.prompt_token_count > 0, f"usage {r.usage_metadata}")

    def stream() -> None:
        text = "".join(ch.text or "" for ch in client.models.generate_content_stream(model=model, contents="Say hi"))
        expect(text == hello, f"streamed {text!r}")

    def stream_async() -> None:
        async def go() -> str:
            out = []
            async for ch in await client.aio.models.generate_content_stream(model=model, contents="Say hi"):
                out.append(ch.text or "")
            return "".join(out)

        text = asyncio.run(go())
        expect(text == hello, f"streamed {text!r}")

    def manual_function_call() -> None:
        cfg = types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[WEATHER])],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        r = client.models.generate_content(model=model, contents="Weather in Paris?", config=cfg)
        call = r.function_calls[0]
        expect(call.name == "get_weather" and call.args == {"city": "Paris"}, f"call {call}")
        history = [
            types.Content(role="user", parts=[types.Part(text="Weather in Paris?")]),
            r.candidates[0].content,
            types.Content(role="user", parts=[types.Part.from_function_response(name=call.name, response={"output": "sunny"})]),
        ]
        r2 = client.models.generate_content(model=model, contents=history, config=cfg)
        expect(r2.text == "Tool result received: sunny", f"text {r2.text!r}")

    def automatic_function_call() -> None:
        calls.clear()
        r = client.models.generate_content(
            model=model, contents="Weather in Paris?", config=types.GenerateContentConfig(tools=[get_weather])
        )
        expect(calls == ["Paris"], f"calls {calls}")
        expect(r.text is not None and r.text.startswith("Tool result received:"), f"text {r.text!r}")
        expect("sunny in Paris" in r.text, f"text {r.text!r}")

    def chat() -> None:
        c = client.chats.create(model=model)
        r1 = c.send_message("Say hi")
        expect(r1.text == hello, f"first {r1.text!r}")
        r2 = c.send_message_stream("Say hi")
        expect("".join(ch.text or "" for ch in r2) == hello, "second")
        # A streamed turn is kept as its chunks, one content each.
        roles = [h.role for h in c.get_history()]
        expect(roles[:3] == ["user", "model", "user"] and set(roles[3:]) == {"model"}, f"roles {roles}")

    def count_tokens() -> None:
        n = client.models.count_tokens(model=model, contents="one two three four").total_tokens
        expect(n > 0, f"tokens {n}")

    def embed() -> None:
        if model.startswith("anthropic/"):
            # Anthropic has no embeddings API: refused, in Gemini's terms.
            try:
                client.models.embed_content(model=model, contents="hello")
                raise AssertionError("an Anthropic embedding was not refused")
            except errors.ClientError as e:
                expect(e.code == 400 and "embeddings" in str(e), f"refusal {e}")
            return
        one = client.models.embed_content(model=model, contents="hello").embeddings
        expect(len(one) == 1 and one[0].values == [0.1, 0.2, 0.3], f"one {one}")
        many = client.models.embed_content(model=model, contents=["hello", "world"]).embeddings
        # To a model whose name holds "gemini" the SDK sends the texts as the
        # parts of one content (one embedding); to others, one each.
        want = 1 if "gemini" in model else 2
        expect(len(many) == want and many[-1].values == [0.1, 0.2, 0.3], f"many {many}")

    def models() -> None:
        names = [m.name for m in client.models.list()]
        expect(f"models/{model}" in names, f"names {names}")
        expect(client.models.get(model=model).name == f"models/{model}", "get")

    for name, fn in [
        ("generate", generate),
        ("stream", stream),
        ("stream_async", stream_async),
        ("manual_function_call", manual_function_call),
        ("automatic_function_call", automatic_function_call),
        ("chat", chat),
        ("count_tokens", count_tokens),
        ("embed", embed),
        ("models", models),
    ]:
        case(f"google-genai {label} {model} {name}", fn)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--models", required=True)
    args = ap.parse_args()
    for label, opts in (
        ("v1", types.HttpOptions(base_url=args.base_url, timeout=30_000)),
        ("v1beta", types.HttpOptions(base_url=args.base_url, api_version="v1beta", timeout=30_000)),
    ):
        client = genai.Client(api_key=args.api_key, http_options=opts)
        for model in args.models.split(","):
            cases(client, label, model)
    passed = sum(1 for _, ok, _ in results if ok)
    failed = [n for n, ok, _ in results if not ok]
    print(json.dumps({"passed": passed, "failed": len(failed), "failures": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
