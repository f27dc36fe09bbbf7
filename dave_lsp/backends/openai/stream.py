"""One request of an OpenAI backend's turn and its streamed answer: the request itself
(the model, the tools offered, the stream closed however it ends), the running turn's
state that `interrupt` reaches into, and the chunks assembled into the step's text,
thinking, tool calls, finish reason and usage.

Servers differ in how they stream tool calls (OpenAI sends the id and name once, then
pieces of the arguments; others send each call whole, or without an index or an id),
and in where they put a reasoning model's thinking; `take_chunk` takes them all.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import attrs
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from dave_lsp.backends.common import Ended
from dave_lsp.backends.openai import tools
from dave_lsp.events import Event, Thinking, Token, Usage
from dave_lsp.tools.editor import EditorTools

DEFAULT_MODEL: Final = "gpt-4o-mini"
"""Used when neither `model` nor the query names one. Local servers need a real name."""

DEFAULT_TIMEOUT_SECONDS: Final = 300.0
"""Longest silence allowed on a request (connect, first byte, or between two chunks).

Generous because a local server may load a model before its first byte, and a reasoning
model may think for a long time before its first streamed delta."""

CONNECT_TIMEOUT_SECONDS: Final = 10.0
"""A server that takes longer than this to accept a TCP connection is not there."""

STOP_REASONS: Final = {"stop": "end_turn", "length": "max_tokens"}


class Signal:
    """A queue sentinel (end of stream, or interrupt)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


CANCELLED: Final = Signal("cancelled")
CLOSED: Final = Signal("closed")

Item = ChatCompletionChunk | Ended | Signal


@attrs.define
class Turn:
    """The running turn, shared between `query` and `interrupt`."""

    queue: asyncio.Queue[Item] = attrs.field(factory=asyncio.Queue)
    pump: asyncio.Task[None] | None = None
    # A permission question or tool that runs now: interrupt() cancels it.
    task: asyncio.Future[Any] | None = None
    cancelled: bool = False  # interrupt() was called: the turn ends as TurnCancelled
    closed: bool = False  # close() was called: the turn's history no longer exists
    direct: Callable[[Event], None] | None = None  # for status lines while a tool runs


@attrs.define
class Call:
    """One tool call, assembled from its streamed deltas."""

    id: str = ""
    name: str = ""
    arguments: list[str] = attrs.field(factory=list)


@attrs.define
class Step:
    """One request of the turn: its answer as it streams in."""

    text: list[str] = attrs.field(factory=list)
    calls: dict[int, Call] = attrs.field(factory=dict)
    finish_reason: str | None = None
    refused: bool = False
    usage: Usage | None = None


async def request(
    client: openai.AsyncOpenAI,
    model: str | None,
    messages: list[ChatCompletionMessageParam],
    editor: EditorTools | None,
    offer_tools: bool,
    more_tools: Sequence[dict[str, Any]] = (),
) -> AsyncIterator[ChatCompletionChunk]:
    """One request's stream, closed however it ends. It is pumped into the turn's queue
    by a task of its own, so `interrupt` can cancel it while it waits on the network
    (connecting, or between chunks), which an `async for` in `query` could not be
    woken from."""
    # No tool_choice or parallel_tool_calls: "auto" is the default, and several
    # servers reject or ignore those fields.
    # `more_tools`: the session's MCP servers' (mcp_tools.py).
    extra: dict[str, Any] = {"tools": [*tools.specs(editor), *more_tools]} if offer_tools else {}
    stream = await client.chat.completions.create(
        model=model or DEFAULT_MODEL,
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        **extra,
    )
    try:
        async for chunk in stream:
            yield chunk
    finally:
        await stream.close()


def reasoning_text(delta: object) -> str | None:
    """`reasoning_content` (DeepSeek, vLLM, llama.cpp) or `reasoning` (Ollama, OpenRouter):
    extra fields the typed delta keeps but does not declare."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(delta, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def take_chunk(chunk: ChatCompletionChunk, step: Step) -> list[Event]:
    """Record one streamed chunk in `step`; the text and thinking events it carries."""
    if chunk.usage is not None:
        step.usage = Usage(
            input_tokens=chunk.usage.prompt_tokens or 0,
            output_tokens=chunk.usage.completion_tokens or 0,
        )
    out: list[Event] = []
    for choice in chunk.choices:
        if choice.index != 0:
            continue  # we ask for one choice; ignore any extra ones
        delta = choice.delta
        for piece in delta.tool_calls or []:
            # Servers differ: OpenAI sends the id and name once, then pieces of the
            # arguments; others send each call whole, or without an index or an id.
            index = piece.index if piece.index is not None else len(step.calls)
            call = step.calls.setdefault(index, Call())
            call.id = call.id or (piece.id or "")
            function = piece.function
            if function is not None:
                call.name = call.name or (function.name or "")
                if function.arguments:
                    call.arguments.append(function.arguments)
        if delta.function_call is not None:  # the API's legacy single-function form
            call = step.calls.setdefault(0, Call())
            call.name = call.name or (delta.function_call.name or "")
            if delta.function_call.arguments:
                call.arguments.append(delta.function_call.arguments)
        reasoning = reasoning_text(delta)
        if reasoning:
            out.append(Thinking(reasoning))
        if delta.content:
            step.text.append(delta.content)
            out.append(Token(delta.content))
        if delta.refusal:
            # OpenAI sends a refusal in its own field; the user must still see it.
            step.refused = True
            step.text.append(delta.refusal)
            out.append(Token(delta.refusal))
        if choice.finish_reason is not None:
            step.finish_reason = choice.finish_reason
    for call in step.calls.values():
        call.id = call.id or f"call_{uuid.uuid4().hex[:24]}"
    return out


def arguments(call: Call) -> tuple[dict[str, Any], str]:
    """The call's input, and what to tell the model when its arguments are not a JSON
    object ("" when they are)."""
    raw = "".join(call.arguments).strip()
    if not raw:
        return {}, ""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return {}, f"The arguments of {call.name} are not valid JSON ({exc}); call it again."
    if not isinstance(value, dict):
        return {}, f"The arguments of {call.name} must be a JSON object; call it again."
    return value, ""


def added(total: Usage, step: Usage | None) -> Usage:
    """The turn's usage after one more request (its context: the newest request's)."""
    if step is None:
        return total
    return Usage(
        input_tokens=total.input_tokens + step.input_tokens,
        output_tokens=total.output_tokens + step.output_tokens,
        context_tokens=step.input_tokens + step.output_tokens,
    )


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel the pump and wait until it has closed its stream. `asyncio.wait` does not
    raise the task's CancelledError, yet still lets our own caller's cancel through."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    await asyncio.wait({task})
