"""The official `mcp` Python SDK's client against the gateway's /mcp.

Usage: python mcp_client.py URL KEY MODE PLAN
  MODE: legacy (sessions, up to 2025-11-25) or 2026-07-28 (session-less)
  PLAN: a JSON list of calls, [{"tool": name, "args": {...}}, ...]

The client declares elicitation, and answers a question by approving it
when the question's text holds `"item_id":100`, declining otherwise.
It prints one JSON object: the tools listed (name, annotations, _meta),
each call's outcome, and the questions it was asked.
"""
import asyncio
import json
import sys

import httpx2 as httpx
import mcp.types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

url, key, mode, plan = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
asked = []


async def on_elicit(context, params: types.ElicitRequestParams):
    message = params.message
    asked.append(message)
    if '"item_id":100' in message:
        return types.ElicitResult(action="accept", content={"approve": True})
    return types.ElicitResult(action="decline")


async def main():
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx.Timeout(30, read=120))
    out = {"mode": mode, "tools": [], "calls": []}
    async with Client(streamable_http_client(url, http_client=http), mode=mode, elicitation_callback=on_elicit) as client:
        for t in (await client.list_tools()).tools:
            out["tools"].append({
                "name": t.name,
                "description": t.description,
                "annotations": t.annotations.model_dump(by_alias=True, exclude_none=True) if t.annotations else None,
                "meta": t.meta,
            })
        for step in plan:
            try:
                r = await client.call_tool(step["tool"], step.get("args", {}))
                text = " ".join(c.text for c in r.content if getattr(c, "type", "") == "text")
                out["calls"].append({"tool": step["tool"], "is_error": bool(r.is_error), "text": text,
                                     "structured": r.structured_content})
            except Exception as e:  # a JSON-RPC error: the call was refused
                out["calls"].append({"tool": step["tool"], "error": f"{type(e).__name__}: {e}"})
    out["asked"] = asked
    print(json.dumps(out))


asyncio.run(main())
