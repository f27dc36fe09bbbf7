"""OpenAI chat-completions wire format for the fake model: `data:` chunks and JSON bodies.

Same shape as fake_anthropic: `stream` yields bytes to send and floats (pauses).
Thinking goes out as `reasoning_content`, the field OpenAI-compatible servers use. Tool
calls stream as OpenAI streams them: per call, a first delta with its index, id, name and
the first piece of the arguments, then deltas with more pieces; several calls in one
answer (`calls`) come one after another.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from dave_lsp.testing.scripts import Plan, ToolCall, templated

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
MODEL = "fake-model"


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def models() -> dict[str, Any]:
    # Fields of both APIs' model lists, so either SDK can read the answer.
    model = {
        "id": MODEL,
        "object": "model",
        "created": 0,
        "owned_by": "dave-lsp",
        "type": "model",
        "display_name": "Fake model (scripted)",
        "created_at": "1970-01-01T00:00:00Z",
    }
    return {
        "object": "list",
        "data": [model],
        "has_more": False,
        "first_id": MODEL,
        "last_id": MODEL,
    }


def _usage(plan: Plan, input_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": input_tokens + plan.output_tokens,
    }


def _tool_call(
    plan: Plan, arguments: str, call: ToolCall | None = None, index: int = 0
) -> dict[str, Any]:
    call = call or plan.tool
    assert call is not None
    return {
        "index": index,
        "id": f"call_fake_{uuid.uuid4().hex[:20]}",
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def for_request(plan: Plan, body: dict[str, Any]) -> Plan:
    """The plan for this request: `notools` fails one that offers tools."""
    if plan.error_with_tools is not None and body.get("tools"):
        plan.error = plan.error_with_tools
    return plan


def stream(plan: Plan, body: dict[str, Any], input_tokens: int) -> Iterator[bytes | float]:
    head = {
        "id": f"chatcmpl-fake-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": str(body.get("model") or MODEL),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return b"data: " + json.dumps({**head, "choices": [choice]}).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if plan.ending == "hang":
        return
    reasoning = templated(lambda piece: chunk({"reasoning_content": piece}))
    content = templated(lambda piece: chunk({"content": piece}))
    for piece in plan.thinking:
        yield reasoning(piece)
    for i, piece in enumerate(plan.text):
        if plan.delay and i:
            yield plan.delay
        yield content(piece)
    if plan.ending == "drop":
        return  # no finish_reason and no [DONE]: the server cuts the connection
    calls = [plan.tool, *plan.more_tools] if plan.tool else []
    for index, call in enumerate(calls):
        pieces = call.pieces
        yield chunk({"tool_calls": [_tool_call(plan, pieces[0] if pieces else "", call, index)]})
        for piece in pieces[1:]:
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if plan.tool else "stop")
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        usage = {**head, "choices": [], "usage": _usage(plan, input_tokens)}
        yield b"data: " + json.dumps(usage).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def complete(plan: Plan, body: dict[str, Any], input_tokens: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.text) or None}
    if plan.thinking:
        message["reasoning_content"] = "".join(plan.thinking)
    if plan.tool:
        message["tool_calls"] = [
            _tool_call(plan, json.dumps(call.input), call) for call in [plan.tool, *plan.more_tools]
        ]
        for call_json in message["tool_calls"]:
            del call_json["index"]
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": "tool_calls" if plan.tool else "stop",
    }
    return {
        "id": f"chatcmpl-fake-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or MODEL),
        "choices": [choice],
        "usage": _usage(plan, input_tokens),
    }
