"""Anthropic Messages API wire format for the fake model: SSE events and JSON bodies.

`stream` yields bytes to send and floats (seconds to pause); the server batches the
bytes into large writes, which is what keeps `long 100000` fast.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

from dave_lsp.testing.scripts import Plan, templated

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _delta(index: int, delta_type: str, field: str, value: str) -> bytes:
    event = {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": delta_type, field: value},
    }
    return _sse("content_block_delta", event)


def _message(body: dict[str, Any], input_tokens: int) -> dict[str, Any]:
    return {
        # The CLI merges assistant messages that share an id: every answer gets its own.
        "id": f"msg_fake_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model") or "fake-model"),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }


def _blocks(plan: Plan) -> list[tuple[dict[str, Any], str, list[str]]]:
    """(empty content block, delta type, pieces) for each block of the answer, in order."""
    blocks: list[tuple[dict[str, Any], str, list[str]]] = []
    if plan.thinking:
        blocks.append(
            ({"type": "thinking", "thinking": "", "signature": ""}, "thinking", plan.thinking)
        )
    if plan.text:
        blocks.append(({"type": "text", "text": ""}, "text", plan.text))
    if plan.tool:
        block = {
            "type": "tool_use",
            "id": f"toolu_fake_{uuid.uuid4().hex[:20]}",
            "name": plan.tool.name,
            "input": {},
        }
        blocks.append((block, "partial_json", plan.tool.pieces))
    return blocks


def _stop_reason(plan: Plan) -> str:
    return "tool_use" if plan.tool else "end_turn"


def stream(plan: Plan, body: dict[str, Any], input_tokens: int) -> Iterator[bytes | float]:
    yield _sse("message_start", {"type": "message_start", "message": _message(body, input_tokens)})
    if plan.ending == "hang":
        return
    for index, (block, kind, pieces) in enumerate(_blocks(plan)):
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        )
        delta_type = "input_json_delta" if kind == "partial_json" else f"{kind}_delta"
        delta = templated(partial(_delta, index, delta_type, kind))
        for i, piece in enumerate(pieces):
            if plan.delay and i and kind == "text":
                yield plan.delay
            yield delta(piece)
        if plan.ending == "drop":
            return  # no content_block_stop / message_stop: the server cuts the connection
        if kind == "thinking":  # real thinking blocks end with a signature; the CLI keeps it
            yield _delta(index, "signature_delta", "signature", "fake-signature")
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    usage = {"input_tokens": input_tokens, "output_tokens": plan.output_tokens}
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "usage": usage,
            "delta": {"stop_reason": _stop_reason(plan), "stop_sequence": None},
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


def complete(plan: Plan, body: dict[str, Any], input_tokens: int) -> dict[str, Any]:
    message = _message(body, input_tokens)
    for block, kind, pieces in _blocks(plan):
        if kind == "partial_json" and plan.tool:
            block["input"] = plan.tool.input
        else:
            block[kind] = "".join(pieces)
            if kind == "thinking":
                block["signature"] = "fake-signature"
        message["content"].append(block)
    message["stop_reason"] = _stop_reason(plan)
    message["usage"]["output_tokens"] = plan.output_tokens
    return message
