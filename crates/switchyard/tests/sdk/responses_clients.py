#!/usr/bin/env python3
"""Responses API conformance: drive a running Switchyard gateway with the
official `openai` Python SDK's Responses API and the OpenAI Agents SDK
(`openai-agents`), against the deterministic mock upstreams behind it
(see conformance.py for their contract), through every provider kind.

    python responses_clients.py --base-url http://127.0.0.1:PORT --api-key sk-sy-... \
        --models openai/gpt-test,anthropic/claude-test,google/gemini-test,compat/local-test

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

import openai
from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.models.openai_responses import OpenAIResponsesModel

KIND_BY_PROVIDER = {"openai": "openai", "compat": "openai", "anthropic": "anthropic", "google": "gemini"}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}

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


def hello(model: str) -> str:
    kind = KIND_BY_PROVIDER[model.split("/")[0]]
    return f"Hello from {kind}. You said: Say hi"


def sdk_cases(client: openai.OpenAI, strict: openai.OpenAI, model: str) -> None:
    def create() -> None:
        r = client.responses.create(model=model, input="Say hi", instructions="Be brief.")
        expect(r.output_text == hello(model), f"text {r.output_text!r}")
        expect(r.status == "completed", f"status {r.status}")
        expect(r.usage is not None and r.usage.input_tokens > 0, f"usage {r.usage}")

    def create_strict() -> None:
        # A client that validates every object against OpenAI's schema.
        r = strict.responses.create(model=model, input="Say hi")
        expect(r.output_text == hello(model), f"text {r.output_text!r}")
        events = list(strict.responses.create(model=model, input="Say hi", stream=True))
        expect(events[-1].type == "response.completed", f"last {events[-1].type}")

    def raw_stream() -> None:
        events = list(client.responses.create(model=model, input="Say hi", stream=True))
        kinds = [e.type for e in events]
        expect(kinds[0] == "response.created", f"first {kinds[0]}")
        expect(kinds[-1] == "response.completed", f"last {kinds[-1]}")
        seqs = [e.sequence_number for e in events]
        expect(seqs == list(range(len(seqs))), f"sequence numbers {seqs}")
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        expect(text == hello(model), f"streamed {text!r}")

    def stream_helper() -> None:
        with client.responses.stream(model=model, input="Say hi") as s:
            deltas = [e.delta for e in s if e.type == "response.output_text.delta"]
            final = s.get_final_response()
        expect("".join(deltas) == hello(model), f"deltas {deltas}")
        expect(final.output_text == hello(model), f"final {final.output_text!r}")

    def tools_and_previous_response() -> None:
        r = client.responses.create(model=model, input="What's the weather in Paris?", tools=[WEATHER_TOOL])
        calls = [o for o in r.output if o.type == "function_call"]
        expect(len(calls) == 1 and calls[0].name == "get_weather", f"calls {r.output}")
        expect(json.loads(calls[0].arguments) == {"city": "Paris"}, f"args {calls[0].arguments}")
        # The next turn names only the previous response and the result.
        r2 = client.responses.create(
            model=model,
            previous_response_id=r.id,
            tools=[WEATHER_TOOL],
            input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21C"}],
        )
        expect(r2.output_text == "Tool result received: sunny, 21C", f"text {r2.output_text!r}")
        expect(r2.previous_response_id == r.id, f"previous {r2.previous_response_id}")
        got = client.responses.retrieve(r2.id)
        expect(got.output_text == r2.output_text, "retrieved")
        items = client.responses.input_items.list(r2.id)
        expect(len(items.data) == 1 and items.data[0].type == "function_call_output", f"items {items.data}")
        client.responses.delete(r2.id)
        try:
            client.responses.retrieve(r2.id)
            raise AssertionError("a deleted response was still there")
        except openai.NotFoundError:
            pass

    def streamed_tools() -> None:
        with client.responses.stream(model=model, input="weather?", tools=[WEATHER_TOOL]) as s:
            final = s.get_final_response()
        calls = [o for o in final.output if o.type == "function_call"]
        expect(len(calls) == 1 and json.loads(calls[0].arguments) == {"city": "Paris"}, f"{final.output}")

    def websocket() -> None:
        # One connection: a response, a continuation of it (not stored:
        # the connection keeps it), and an unknown id.
        def until_terminal(conn: Any) -> list[Any]:
            events = []
            for ev in conn:
                events.append(ev)
                if ev.type in ("response.completed", "response.incomplete", "response.failed", "error"):
                    return events
            raise AssertionError("the socket closed before a terminal event")

        with client.responses.connect() as conn:
            conn.response.create(model=model, input="Say hi", store=False)
            first = until_terminal(conn)
            expect(first[0].type == "response.created", f"first {first[0].type}")
            expect(first[-1].type == "response.completed", f"last {first[-1].type}")
            expect([e.sequence_number for e in first] == list(range(len(first))), "sequence numbers")
            text = "".join(e.delta for e in first if e.type == "response.output_text.delta")
            expect(text == hello(model), f"text {text!r}")
            conn.response.create(
                model=model, input="Say hi", store=False, previous_response_id=first[-1].response.id
            )
            second = until_terminal(conn)
            expect(second[-1].type == "response.completed", f"continuation {second[-1].type}")
            conn.response.create(model=model, input="x", previous_response_id="resp_unknown")
            err = until_terminal(conn)[-1]
            expect(err.type == "error", f"unknown id {err.type}")
            code = getattr(err, "code", None) or getattr(getattr(err, "error", None), "code", None)
            expect(code == "previous_response_not_found", f"error {err}")

    for name, fn in [
        ("websocket", websocket),
        ("create", create),
        ("create_strict", create_strict),
        ("raw_stream", raw_stream),
        ("stream_helper", stream_helper),
        ("tools_previous_response_id", tools_and_previous_response),
        ("streamed_tools", streamed_tools),
    ]:
        case(f"openai-sdk {model} {name}", fn)


def agents_cases(base_url: str, api_key: str, model: str) -> None:
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city.

        Args:
            city: The city name.
        """
        calls.append(city)
        return f"sunny in {city}"

    def agent() -> Agent:
        client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0)
        return Agent(
            name="weather",
            instructions="Answer weather questions with the tool.",
            tools=[get_weather],
            model=OpenAIResponsesModel(model=model, openai_client=client),
        )

    def run() -> None:
        calls.clear()
        r = asyncio.run(Runner.run(agent(), "What's the weather in Paris?"))
        expect(calls == ["Paris"], f"tool calls {calls}")
        expect(r.final_output == "Tool result received: sunny in Paris", f"final {r.final_output!r}")

    def run_streamed() -> None:
        calls.clear()

        async def go() -> Any:
            rs = Runner.run_streamed(agent(), "What's the weather in Paris?")
            async for _ in rs.stream_events():
                pass
            return rs

        rs = asyncio.run(go())
        expect(calls == ["Paris"], f"tool calls {calls}")
        expect(rs.final_output == "Tool result received: sunny in Paris", f"final {rs.final_output!r}")

    case(f"openai-agents {model} run", run)
    case(f"openai-agents {model} run_streamed", run_streamed)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--models", required=True)
    args = ap.parse_args()
    set_tracing_disabled(True)
    client = openai.OpenAI(base_url=f"{args.base_url}/v1", api_key=args.api_key, max_retries=0, timeout=30)
    strict = openai.OpenAI(
        base_url=f"{args.base_url}/v1", api_key=args.api_key, max_retries=0, timeout=30,
        _strict_response_validation=True,
    )
    for model in args.models.split(","):
        sdk_cases(client, strict, model)
        agents_cases(args.base_url, args.api_key, model)
    passed = sum(1 for _, ok, _ in results if ok)
    failed = [n for n, ok, _ in results if not ok]
    print(json.dumps({"passed": passed, "failed": len(failed), "failures": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
