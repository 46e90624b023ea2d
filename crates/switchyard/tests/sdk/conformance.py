#!/usr/bin/env python3
"""SDK conformance: drive a running Switchyard gateway with the official
Python SDKs (`openai`, `anthropic`; versions pinned in requirements.txt) and
check every answer against the deterministic mock upstreams behind it.

    python conformance.py --base-url http://127.0.0.1:PORT \
        --models openai/gpt-test,anthropic/claude-test,google/gemini-test,compat/local-test \
        --route smart

The mocks' contract (tests/it/mock.rs):
- text: `Hello from <kind>. You said: <last user text>`, where <kind> is
  `openai` for openai/* and compat/*, `anthropic` for anthropic/*, `gemini`
  for google/*; usage 11 input / 7 output tokens;
- with tools: the first declared tool is called with {"city": "Paris"} and
  the second with {"city": "Rome"}, in parallel;
- last message a tool result: `Tool result received: <first result content>`.

Prints one PASS/FAIL line per case, then one JSON summary line, and exits 1
if any case failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any, Callable

import anthropic
import openai

DEFAULT_API_KEY = "sk-sy-test-not-a-provider-key"
TIMEOUT_S = 30.0
MAX_TOKENS = 256

HELLO_PROMPT = "Say hi"
WEATHER_PROMPT = "What's the weather in Paris?"
INPUT_TOKENS = 11
OUTPUT_TOKENS = 7

# What the mock calls when the request has tools, in this order.
EXPECTED_CALLS = [
    ("get_weather", {"city": "Paris"}),
    ("get_time", {"city": "Rome"}),
]
# What the script answers to each tool; the mock echoes the first result.
TOOL_RESULTS = {"get_weather": "sunny, 21C", "get_time": "14:00"}
EXPECTED_TOOL_ANSWER = "Tool result received: sunny, 21C"

# Provider prefix of a model -> the mock kind that answers it.
KIND_BY_PROVIDER = {
    "openai": "openai",
    "compat": "openai",
    "anthropic": "anthropic",
    "google": "gemini",
}
ALL_KINDS = ("openai", "anthropic", "gemini")

CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": CITY_SCHEMA},
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "Local time in a city", "parameters": CITY_SCHEMA},
    },
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Current weather in a city", "input_schema": CITY_SCHEMA},
    {"name": "get_time", "description": "Local time in a city", "input_schema": CITY_SCHEMA},
]


class CheckFailed(Exception):
    """An answer arrived but differs from the mock contract."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def check_eq(actual: Any, expected: Any, what: str) -> None:
    check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


@dataclass
class Target:
    """What a case calls and what it may answer."""

    model: str
    kinds: tuple[str, ...]  # mock kinds whose answer is acceptable
    provider: str | None  # expected x-switchyard-provider, None = don't check

    def hello_texts(self) -> list[str]:
        return [f"Hello from {kind}. You said: {HELLO_PROMPT}" for kind in self.kinds]


def model_target(model: str) -> Target:
    provider = model.split("/", 1)[0]
    return Target(model=model, kinds=(KIND_BY_PROVIDER[provider],), provider=provider)


def route_target(route: str, kind: str | None) -> Target:
    # The route's primary fails and the gateway fails over; whichever target
    # answers, the answer must be a correct one of its kind.
    return Target(model=route, kinds=(kind,) if kind else ALL_KINDS, provider=None)


def check_hello(text: str | None, target: Target) -> None:
    check(text in target.hello_texts(), f"text: expected one of {target.hello_texts()!r}, got {text!r}")


# ---------------------------------------------------------------- OpenAI SDK


def openai_tool_call_list(message: Any) -> list[dict]:
    """Tool calls of a non-stream message, as plain dicts."""
    calls = []
    for tc in message.tool_calls or []:
        check_eq(tc.type, "function", "tool_calls[].type")
        calls.append({"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments})
    return calls


def check_openai_calls(calls: list[dict]) -> None:
    check_eq(len(calls), len(EXPECTED_CALLS), "number of tool calls")
    for call, (name, args) in zip(calls, EXPECTED_CALLS):
        check(bool(call["id"]), f"tool call {name}: empty id")
        check_eq(call["name"], name, "tool call name")
        try:
            parsed = json.loads(call["arguments"])
        except (TypeError, ValueError):
            raise CheckFailed(f"tool call {name}: arguments are not JSON: {call['arguments']!r}")
        check_eq(parsed, args, f"tool call {name} arguments")
    ids = [c["id"] for c in calls]
    check(len(set(ids)) == len(ids), f"tool call ids are not distinct: {ids!r}")


def check_openai_usage(usage: Any) -> None:
    check(usage is not None, "usage missing")
    check_eq(usage.prompt_tokens, INPUT_TOKENS, "usage.prompt_tokens")
    check_eq(usage.completion_tokens, OUTPUT_TOKENS, "usage.completion_tokens")
    check_eq(usage.total_tokens, INPUT_TOKENS + OUTPUT_TOKENS, "usage.total_tokens")


def openai_only_choice(completion: Any) -> Any:
    check_eq(len(completion.choices), 1, "number of choices")
    return completion.choices[0]


@dataclass
class OpenAIStreamResult:
    text: str
    calls: list[dict]
    finish_reason: str | None
    usage_chunks: list[int]  # positions of chunks that carry a non-null usage
    chunk_count: int
    last_chunk: Any


def collect_openai_stream(stream: Any) -> OpenAIStreamResult:
    """Accumulates a chat.completions stream: content, tool calls by index
    (id and name only on a call's first delta, argument fragments
    concatenated), the finish reason and where usage appeared."""
    text = ""
    calls: dict[int, dict] = {}
    finish_reason = None
    usage_chunks: list[int] = []
    position = -1
    chunk = None
    with stream:
        for position, chunk in enumerate(stream):
            if chunk.usage is not None:
                usage_chunks.append(position)
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    text += delta.content
                for tc in delta.tool_calls or []:
                    fn = tc.function
                    if tc.index not in calls:
                        check(bool(tc.id), f"first delta of tool call {tc.index} has no id")
                        check(bool(fn and fn.name), f"first delta of tool call {tc.index} has no name")
                        calls[tc.index] = {"id": tc.id, "name": fn.name, "arguments": ""}
                    else:
                        # The SDK's own accumulator concatenates strings, so a
                        # repeated id or name would corrupt it.
                        check(not tc.id, f"tool call {tc.index}: id repeated on a later delta")
                        check(not (fn and fn.name), f"tool call {tc.index}: name repeated on a later delta")
                    if fn and fn.arguments:
                        calls[tc.index]["arguments"] += fn.arguments
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
    ordered = [calls[i] for i in sorted(calls)]
    check_eq(sorted(calls), list(range(len(calls))), "tool call indexes")
    return OpenAIStreamResult(text, ordered, finish_reason, usage_chunks, position + 1, chunk)


def check_openai_stream_usage(result: OpenAIStreamResult) -> None:
    """With include_usage: only the last chunk carries usage, with no choices."""
    check(result.chunk_count > 0, "empty stream")
    check(bool(result.usage_chunks), "no chunk carries usage")
    last = result.chunk_count - 1
    check(
        result.usage_chunks == [last],
        f"usage on chunks {result.usage_chunks} of {result.chunk_count}, expected only on the last",
    )
    check_eq(len(result.last_chunk.choices), 0, "choices on the usage chunk")
    check_openai_usage(result.last_chunk.usage)


def openai_create(client: openai.OpenAI, model: str, messages: list, tools: bool, **extra: Any) -> Any:
    kwargs: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, **extra}
    if tools:
        kwargs["tools"] = OPENAI_TOOLS
    return client.chat.completions.create(**kwargs)


def openai_stream(
    client: openai.OpenAI, model: str, messages: list, tools: bool, include_usage: bool = True
) -> OpenAIStreamResult:
    extra: dict[str, Any] = {"stream": True}
    if include_usage:
        extra["stream_options"] = {"include_usage": True}
    return collect_openai_stream(openai_create(client, model, messages, tools, **extra))


def hello_messages() -> list:
    return [{"role": "user", "content": HELLO_PROMPT}]


def weather_messages() -> list:
    return [{"role": "user", "content": WEATHER_PROMPT}]


def openai_text(client: openai.OpenAI, target: Target) -> str:
    completion = openai_create(client, target.model, hello_messages(), tools=False)
    choice = openai_only_choice(completion)
    check_hello(choice.message.content, target)
    check(not choice.message.tool_calls, f"unexpected tool calls: {choice.message.tool_calls!r}")
    check_eq(choice.finish_reason, "stop", "finish_reason")
    check_openai_usage(completion.usage)
    return ""


def openai_text_stream(client: openai.OpenAI, target: Target) -> str:
    result = openai_stream(client, target.model, hello_messages(), tools=False)
    check_hello(result.text, target)
    check(not result.calls, f"unexpected tool calls: {result.calls!r}")
    check_eq(result.finish_reason, "stop", "finish_reason")
    check_openai_stream_usage(result)
    return ""


def openai_text_stream_without_usage(client: openai.OpenAI, target: Target) -> str:
    # The gateway asks upstream for usage on its own account; a client that
    # did not ask must not see it.
    result = openai_stream(client, target.model, hello_messages(), tools=False, include_usage=False)
    check_hello(result.text, target)
    check_eq(result.finish_reason, "stop", "finish_reason")
    check(not result.usage_chunks, f"usage leaked on chunks {result.usage_chunks} without stream_options")
    return ""


def openai_tools(client: openai.OpenAI, target: Target) -> str:
    completion = openai_create(client, target.model, weather_messages(), tools=True)
    choice = openai_only_choice(completion)
    check_openai_calls(openai_tool_call_list(choice.message))
    check_eq(choice.finish_reason, "tool_calls", "finish_reason")
    check_openai_usage(completion.usage)
    return ""


def openai_tools_stream(client: openai.OpenAI, target: Target) -> str:
    result = openai_stream(client, target.model, weather_messages(), tools=True)
    check_openai_calls(result.calls)
    check_eq(result.finish_reason, "tool_calls", "finish_reason")
    check_openai_stream_usage(result)
    return ""


def openai_round_trip_messages(content: str | None, calls: list[dict]) -> list:
    """The conversation with the gateway's own tool calls sent back, ids
    untouched, followed by one tool result per call."""
    assistant = {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }
    results = [{"role": "tool", "tool_call_id": c["id"], "content": TOOL_RESULTS[c["name"]]} for c in calls]
    return [*weather_messages(), assistant, *results]


def openai_tool_result(client: openai.OpenAI, target: Target) -> str:
    first = openai_only_choice(openai_create(client, target.model, weather_messages(), tools=True))
    calls = openai_tool_call_list(first.message)
    check_openai_calls(calls)
    messages = openai_round_trip_messages(first.message.content, calls)
    completion = openai_create(client, target.model, messages, tools=True)
    choice = openai_only_choice(completion)
    check_eq(choice.message.content, EXPECTED_TOOL_ANSWER, "text")
    check_eq(choice.finish_reason, "stop", "finish_reason")
    check_openai_usage(completion.usage)
    return ""


def openai_tool_result_stream(client: openai.OpenAI, target: Target) -> str:
    first = openai_stream(client, target.model, weather_messages(), tools=True)
    check_openai_calls(first.calls)
    messages = openai_round_trip_messages(first.text or None, first.calls)
    result = openai_stream(client, target.model, messages, tools=True)
    check_eq(result.text, EXPECTED_TOOL_ANSWER, "text")
    check_eq(result.finish_reason, "stop", "finish_reason")
    check_openai_stream_usage(result)
    return ""


def openai_headers(client: openai.OpenAI, target: Target) -> str:
    raw = client.chat.completions.with_raw_response.create(
        model=target.model, messages=hello_messages(), max_tokens=MAX_TOKENS
    )
    return check_switchyard_headers(raw.headers, target, lambda: openai_only_choice(raw.parse()).message.content)


# ------------------------------------------------------------- Anthropic SDK


def anthropic_blocks(message: Any) -> tuple[str, list[dict]]:
    """The text (all text blocks joined) and the tool_use blocks of a message."""
    text = ""
    calls = []
    for block in message.content:
        if block.type == "text":
            check(block.text != "", "empty text block")
            text += block.text
        elif block.type == "tool_use":
            calls.append({"id": block.id, "name": block.name, "input": block.input})
        else:
            raise CheckFailed(f"unexpected content block type {block.type!r}")
    return text, calls


def check_anthropic_calls(calls: list[dict]) -> None:
    check_eq(len(calls), len(EXPECTED_CALLS), "number of tool_use blocks")
    for call, (name, args) in zip(calls, EXPECTED_CALLS):
        check(bool(call["id"]), f"tool_use {name}: empty id")
        check_eq(call["name"], name, "tool_use name")
        check_eq(call["input"], args, f"tool_use {name} input")
    ids = [c["id"] for c in calls]
    check(len(set(ids)) == len(ids), f"tool_use ids are not distinct: {ids!r}")


def check_anthropic_usage(usage: Any) -> None:
    check(usage is not None, "usage missing")
    check_eq(usage.input_tokens, INPUT_TOKENS, "usage.input_tokens")
    check_eq(usage.output_tokens, OUTPUT_TOKENS, "usage.output_tokens")


def check_anthropic_hello(message: Any, target: Target) -> None:
    text, calls = anthropic_blocks(message)
    check_hello(text, target)
    check(not calls, f"unexpected tool_use blocks: {calls!r}")
    check_eq(message.stop_reason, "end_turn", "stop_reason")
    check_anthropic_usage(message.usage)


def check_anthropic_tools(message: Any) -> list[dict]:
    text, calls = anthropic_blocks(message)
    check_anthropic_calls(calls)
    check_eq(message.stop_reason, "tool_use", "stop_reason")
    check_anthropic_usage(message.usage)
    return calls


def check_anthropic_tool_answer(message: Any) -> None:
    text, calls = anthropic_blocks(message)
    check_eq(text, EXPECTED_TOOL_ANSWER, "text")
    check(not calls, f"unexpected tool_use blocks: {calls!r}")
    check_eq(message.stop_reason, "end_turn", "stop_reason")
    check_anthropic_usage(message.usage)


def anthropic_kwargs(model: str, messages: list, tools: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS}
    if tools:
        kwargs["tools"] = ANTHROPIC_TOOLS
    return kwargs


def anthropic_create(client: anthropic.Anthropic, model: str, messages: list, tools: bool) -> Any:
    return client.messages.create(**anthropic_kwargs(model, messages, tools))


def anthropic_stream(client: anthropic.Anthropic, model: str, messages: list, tools: bool) -> Any:
    """The final message accumulated by the SDK's stream helper."""
    with client.messages.stream(**anthropic_kwargs(model, messages, tools)) as stream:
        events = sum(1 for _ in stream)
        # The SDK silently skips SSE events that have no `event:` line.
        check(events > 0, "stream yielded no events (SSE events need an `event:` line)")
        return stream.get_final_message()


def anthropic_round_trip_messages(text: str, calls: list[dict]) -> list:
    """The conversation with the gateway's own tool_use blocks sent back, ids
    untouched, followed by one tool_result per call."""
    assistant_content: list[dict] = []
    if text:
        assistant_content.append({"type": "text", "text": text})
    for c in calls:
        assistant_content.append({"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["input"]})
    results = [{"type": "tool_result", "tool_use_id": c["id"], "content": TOOL_RESULTS[c["name"]]} for c in calls]
    return [
        *weather_messages(),
        {"role": "assistant", "content": assistant_content},
        {"role": "user", "content": results},
    ]


def anthropic_text(client: anthropic.Anthropic, target: Target) -> str:
    check_anthropic_hello(anthropic_create(client, target.model, hello_messages(), tools=False), target)
    return ""


def anthropic_text_stream(client: anthropic.Anthropic, target: Target) -> str:
    check_anthropic_hello(anthropic_stream(client, target.model, hello_messages(), tools=False), target)
    return ""


def anthropic_tools(client: anthropic.Anthropic, target: Target) -> str:
    check_anthropic_tools(anthropic_create(client, target.model, weather_messages(), tools=True))
    return ""


def anthropic_tools_stream(client: anthropic.Anthropic, target: Target) -> str:
    check_anthropic_tools(anthropic_stream(client, target.model, weather_messages(), tools=True))
    return ""


def anthropic_tool_result(client: anthropic.Anthropic, target: Target) -> str:
    first = anthropic_create(client, target.model, weather_messages(), tools=True)
    calls = check_anthropic_tools(first)
    text, _ = anthropic_blocks(first)
    answer = anthropic_create(client, target.model, anthropic_round_trip_messages(text, calls), tools=True)
    check_anthropic_tool_answer(answer)
    return ""


def anthropic_tool_result_stream(client: anthropic.Anthropic, target: Target) -> str:
    first = anthropic_stream(client, target.model, weather_messages(), tools=True)
    calls = check_anthropic_tools(first)
    text, _ = anthropic_blocks(first)
    answer = anthropic_stream(client, target.model, anthropic_round_trip_messages(text, calls), tools=True)
    check_anthropic_tool_answer(answer)
    return ""


def anthropic_headers(client: anthropic.Anthropic, target: Target) -> str:
    raw = client.messages.with_raw_response.create(**anthropic_kwargs(target.model, hello_messages(), tools=False))
    return check_switchyard_headers(raw.headers, target, lambda: anthropic_blocks(raw.parse())[0])


# ------------------------------------------------------------------- shared


def check_switchyard_headers(headers: Any, target: Target, text_of_body: Callable[[], str | None]) -> str:
    request_id = headers.get("x-switchyard-request-id")
    provider = headers.get("x-switchyard-provider")
    attempts = headers.get("x-switchyard-attempts")
    check(bool(request_id), "x-switchyard-request-id missing")
    if target.provider is not None:
        check_eq(provider, target.provider, "x-switchyard-provider")
    check_hello(text_of_body(), target)
    return f"provider={provider} attempts={attempts}"


# (case name, stream, function). Each function raises on a mismatch and may
# return a short note for the PASS line.
OPENAI_CASES = [
    ("text", False, openai_text),
    ("text", True, openai_text_stream),
    ("text_no_usage", True, openai_text_stream_without_usage),
    ("tools", False, openai_tools),
    ("tools", True, openai_tools_stream),
    ("tool_result", False, openai_tool_result),
    ("tool_result", True, openai_tool_result_stream),
    ("headers", False, openai_headers),
]
ANTHROPIC_CASES = [
    ("text", False, anthropic_text),
    ("text", True, anthropic_text_stream),
    ("tools", False, anthropic_tools),
    ("tools", True, anthropic_tools_stream),
    ("tool_result", False, anthropic_tool_result),
    ("tool_result", True, anthropic_tool_result_stream),
    ("headers", False, anthropic_headers),
]
# Through a route name: text both ways, and the headers (which show the
# provider that answered and the number of attempts).
OPENAI_ROUTE_CASES = [
    ("text", False, openai_text),
    ("text", True, openai_text_stream),
    ("headers", False, openai_headers),
]
ANTHROPIC_ROUTE_CASES = [
    ("text", False, anthropic_text),
    ("text", True, anthropic_text_stream),
    ("headers", False, anthropic_headers),
]


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.matrix: dict[str, dict[str, dict[str, dict[str, str]]]] = {}

    def record(self, sdk: str, model: str, case: str, stream: bool, error: str | None, note: str) -> None:
        where = f"sdk={sdk} model={model} stream={str(stream).lower()} case={case}"
        if error is None:
            self.passed += 1
            print(f"PASS {where}" + (f" {note}" if note else ""), flush=True)
        else:
            self.failed += 1
            print(f"FAIL {where} reason={one_line(error)}", flush=True)
        mode = "stream" if stream else "non_stream"
        cell = self.matrix.setdefault(sdk, {}).setdefault(model, {}).setdefault(case, {})
        cell[mode] = "pass" if error is None else "fail"

    def summary(self) -> dict:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "matrix": self.matrix,
            "sdk_versions": {"openai": openai.__version__, "anthropic": anthropic.__version__},
        }


def one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(error: Exception) -> str:
    if isinstance(error, CheckFailed):
        return str(error)
    if isinstance(error, openai.APIStatusError | anthropic.APIStatusError):
        return f"HTTP {error.status_code}: {error.message}"
    return f"{type(error).__name__}: {error}"


def run_cases(report: Report, sdk: str, client: Any, cases: list, target: Target) -> None:
    for case, stream, function in cases:
        try:
            note = function(client, target)
            error = None
        except Exception as e:  # noqa: BLE001 - every failure becomes a FAIL line
            note, error = "", describe(e)
        report.record(sdk, target.model, case, stream, error, note)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Check the gateway against the official OpenAI and Anthropic Python SDKs."
    )
    parser.add_argument("--base-url", required=True, help="gateway address, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--models",
        required=True,
        help="comma-separated provider/model names; providers: " + ", ".join(sorted(KIND_BY_PROVIDER)),
    )
    parser.add_argument("--route", help="a route name whose primary fails; checks that failover answers correctly")
    parser.add_argument(
        "--route-kind",
        choices=ALL_KINDS,
        help="mock kind expected to answer through --route (default: any)",
    )
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="gateway key (default: %(default)s)")
    parser.add_argument(
        "--strict-schema",
        action="store_true",
        help="also make the SDKs validate every response against their types (_strict_response_validation)",
    )
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    for model in args.models:
        provider = model.split("/", 1)[0]
        if "/" not in model or provider not in KIND_BY_PROVIDER:
            parser.error(f"model {model!r}: expected provider/model with provider in {sorted(KIND_BY_PROVIDER)}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    base = args.base_url.rstrip("/")
    openai_client = openai.OpenAI(
        base_url=base + "/v1",
        api_key=args.api_key,
        max_retries=0,
        timeout=TIMEOUT_S,
        _strict_response_validation=args.strict_schema,
    )
    anthropic_client = anthropic.Anthropic(
        base_url=base,
        api_key=args.api_key,
        max_retries=0,
        timeout=TIMEOUT_S,
        _strict_response_validation=args.strict_schema,
    )

    report = Report()
    for model in args.models:
        target = model_target(model)
        run_cases(report, "openai", openai_client, OPENAI_CASES, target)
        run_cases(report, "anthropic", anthropic_client, ANTHROPIC_CASES, target)
    if args.route:
        target = route_target(args.route, args.route_kind)
        run_cases(report, "openai", openai_client, OPENAI_ROUTE_CASES, target)
        run_cases(report, "anthropic", anthropic_client, ANTHROPIC_ROUTE_CASES, target)

    print(json.dumps(report.summary(), sort_keys=True), flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
