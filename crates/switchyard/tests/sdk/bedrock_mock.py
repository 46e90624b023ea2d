"""boto3 against the test suite's mock Bedrock runtime (tests/it/bedrock.rs).

The mock checks each call's SigV4 signature by computing it again, and
answers Converse and ConverseStream as Bedrock does. If boto3, AWS's own
client, gets through its signature check and reads its answers and event
stream frames (CRCs included), the mock speaks the real format, and the
gateway's tests against it mean something.

Usage: bedrock_mock.py ENDPOINT REGION KEY_ID SECRET SESSION MODEL
Prints one JSON line with what boto3 read.
"""

import json
import sys

import boto3
from botocore.config import Config

endpoint, region, key_id, secret, session, model = sys.argv[1:7]
client = boto3.client(
    "bedrock-runtime",
    endpoint_url=endpoint,
    region_name=region,
    aws_access_key_id=key_id,
    aws_secret_access_key=secret,
    aws_session_token=session,
    config=Config(retries={"max_attempts": 1}),
)
messages = [{"role": "user", "content": [{"text": "Say hi"}]}]
whole = client.converse(modelId=model, messages=messages, system=[{"text": "Be brief."}])
tools = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
            }
        }
    ]
}
called = client.converse(modelId=model, messages=messages, toolConfig=tools)
events = []
for ev in client.converse_stream(modelId=model, messages=messages)["stream"]:
    events.append(ev)
streamed = "".join(
    e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e
)
print(
    json.dumps(
        {
            "text": whole["output"]["message"]["content"][0]["text"],
            "usage": whole["usage"],
            "tool": called["output"]["message"]["content"][0]["toolUse"],
            "stop": called["stopReason"],
            "events": [next(iter(e)) for e in events],
            "streamed": streamed,
            "stream_usage": next(e["metadata"]["usage"] for e in events if "metadata" in e),
        }
    )
)
