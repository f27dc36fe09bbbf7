"""The OpenAI-compatible backend: chat completions streamed from any endpoint that speaks
the OpenAI HTTP API (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio, ...).

The HTTP API is stateless, so `OpenAISession` owns the session's conversation: an optional
system prompt, then alternating user/assistant messages, sent whole on every turn. The
history is seeded from the editor's transcript on the first query and dropped by `close()`.

Rules this module keeps (the protocol leaves them to the backend):

- A turn's user message and answer join the history only when the turn ends. A failed turn
  leaves the history exactly as it was, so retrying the same prompt is clean.
- A cancelled turn is kept: the user message, then the partial answer the user already saw
  followed by the marker ``[interrupted]`` (just the marker when nothing arrived yet). This
  matches what the editor shows and what the Claude backend does with an interrupted turn,
  and it keeps user/assistant alternation, which some chat templates (llama.cpp, vLLM)
  insist on.
- The API key is read from the environment variable named by `openai.apiKeyEnv` (default
  OPENAI_API_KEY), first in `initializationOptions.env`, then in the server's environment.
  It is required because the official client requires one; local servers that ignore keys
  (Ollama, llama.cpp) accept any non-empty value. The key never appears in a message or log:
  it is remembered by `logs` like every secret, and every error text passes through
  `logs.redact` with it.
- The endpoint asking for a tool ends the turn with a BackendError: tool calling is not
  implemented here yet, and waiting for a tool result that never comes would hang.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import attrs
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from dave_lsp import logs
from dave_lsp.backends.base import ChatMessage, PermissionAsker, SessionConfig, ToolObserver
from dave_lsp.backends.common import Ended, finished, one_line, pump
from dave_lsp.backends.registry import OpenAIOptions, options_of
from dave_lsp.events import (
    BackendError,
    Event,
    Status,
    Thinking,
    Token,
    TurnCancelled,
    Usage,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "gpt-4o-mini"
"""Used when neither `model` nor the query names one. Local servers need a real name."""

DEFAULT_TIMEOUT_SECONDS: Final = 300.0
"""Longest silence allowed on a request (connect, first byte, or between two chunks).

Generous because a local server may load a model before its first byte, and a reasoning
model may think for a long time before its first streamed delta."""

CONNECT_TIMEOUT_SECONDS: Final = 10.0
"""A server that takes longer than this to accept a TCP connection is not there."""

INTERRUPTED_MARKER: Final = "[interrupted]"

_STOP_REASONS: Final = {"stop": "end_turn", "length": "max_tokens"}


class _Signal:
    """A queue sentinel (end of stream, or interrupt)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_CANCELLED: Final = _Signal("cancelled")
_CLOSED: Final = _Signal("closed")

_Item = ChatCompletionChunk | Ended | _Signal


@attrs.define
class _Turn:
    """The running turn, shared between `query` and `interrupt`."""

    queue: asyncio.Queue[_Item] = attrs.field(factory=asyncio.Queue)
    pump: asyncio.Task[None] | None = None
    cancelled: bool = False  # interrupt() was called: the turn ends as TurnCancelled
    closed: bool = False  # close() was called: the turn's history no longer exists


class OpenAISession:
    """One conversation with an OpenAI-compatible endpoint; satisfies `BackendSession`."""

    def __init__(
        self, config: SessionConfig, ask: PermissionAsker, observer: ToolObserver | None = None
    ) -> None:
        self._config = config
        self._settings = options_of(config, OpenAIOptions)
        # Kept for the day this backend runs tools; unused while tool calls end the turn.
        self._ask = ask
        self._observer = observer
        self._client: openai.AsyncOpenAI | None = None
        self._api_key = ""
        self._history: list[ChatCompletionMessageParam] = self._base_history()
        self._seeded = False
        self._turn: _Turn | None = None
        self._backend_session_id = _new_conversation_id()

    # -- the BackendSession protocol -------------------------------------------------------

    @property
    def has_conversation(self) -> bool:
        return self._seeded

    @property
    def alive(self) -> bool:
        """Always True: there is no process or connection that can die between turns (a
        failed request fails only its turn). False would make the actor close and reopen
        this session, and closing drops the history."""
        return True

    @property
    def backend_session_id(self) -> str:
        """Names this conversation in results; a new one after `close()`."""
        return self._backend_session_id

    @property
    def history(self) -> list[ChatCompletionMessageParam]:
        """A copy of the messages the next turn will send before its prompt."""
        return list(self._history)

    async def open(self, warm_up: bool = False) -> None:
        """Check the settings and build the client. No request is sent: an endpoint is
        only known to be alive once it answers a turn, and probing (`GET /models`) is not
        something every compatible server implements."""
        if self._client is not None:
            return
        base_url = (self._settings.base_url or "").strip()
        if not base_url:
            raise BackendError(
                "no OpenAI-compatible endpoint configured: set initializationOptions.openai.baseUrl"
                " (e.g. http://localhost:11434/v1 for Ollama)"
            )
        key_env = self._settings.api_key_env or "OPENAI_API_KEY"
        key = self._config.env.get(key_env)
        if key is None:
            key = os.environ.get(key_env)
        if not key:
            named = (
                "or name another with openai.apiKeyEnv"
                if key_env == "OPENAI_API_KEY"
                else "named by openai.apiKeyEnv"
            )
            raise BackendError(
                f"set the environment variable {key_env} ({named})"
                " in initializationOptions.env or the server's environment;"
                " any non-empty value works for local servers such as Ollama"
            )
        self._api_key = key
        logs.remember_secret(key)
        total = self._timeout_seconds()
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=key,
            timeout=openai.Timeout(total, connect=min(total, CONNECT_TIMEOUT_SECONDS)),
            # A retry would replay a turn the user may already be reading, and hides the
            # real error behind a long wait; the user retries instead.
            max_retries=0,
        )

    async def query(
        self,
        prompt: str,
        transcript: Sequence[ChatMessage],
        direct: Callable[[Event], None] | None = None,
    ) -> AsyncIterator[Event]:
        """Stream one turn. See the module docstring for what the history keeps."""
        # `direct` is not used: the stream is read in this very generator, with no hop
        # between tasks to save.
        await self.open()
        client = self._client
        assert client is not None
        started = time.monotonic()
        # The transcript counts only while this session has no conversation of its own; it
        # is committed with the turn, so a failed first turn is seeded again by the retry.
        earlier = list(self._history)
        if not self._seeded:
            earlier.extend(_message(m.role, m.content) for m in transcript)
        user = _message("user", prompt)
        messages = [*earlier, user]

        turn = _Turn()
        self._turn = turn
        parts: list[str] = []
        committed = False
        try:
            yield Status("working")
            if turn.cancelled:
                raise TurnCancelled()
            turn.pump = asyncio.create_task(
                pump(self._chunks(client, messages), turn.queue.put_nowait)
            )
            finish_reason: str | None = None
            refused = False
            usage = Usage()
            while True:
                item = await turn.queue.get()
                if turn.closed or item is _CLOSED:
                    raise BackendError("the session was closed while its turn ran")
                # Checked before the item: an interrupt wins over chunks still queued.
                if turn.cancelled or item is _CANCELLED:
                    raise TurnCancelled()
                if isinstance(item, Ended):
                    if item.error is None:
                        break
                    # `from None`: the client's own exception text may quote the key back
                    # (an endpoint echoing it in a 401 body), and a logged traceback would
                    # show it; the BackendError says everything, redacted.
                    log.debug("turn failed: %s", type(item.error).__name__)
                    raise self._backend_error(item.error) from None
                assert isinstance(item, ChatCompletionChunk)
                if item.usage is not None:
                    usage = Usage(
                        input_tokens=item.usage.prompt_tokens or 0,
                        output_tokens=item.usage.completion_tokens or 0,
                    )
                for choice in item.choices:
                    if choice.index != 0:
                        continue  # we ask for one choice; ignore any extra ones
                    delta = choice.delta
                    if delta.tool_calls or delta.function_call:
                        raise BackendError(_tool_call_message(_tool_name(choice)))
                    reasoning = _reasoning_text(delta)
                    if reasoning:
                        yield Thinking(reasoning)
                    if delta.content:
                        parts.append(delta.content)
                        yield Token(delta.content)
                    if delta.refusal:
                        # OpenAI sends a refusal in its own field; the user must still see it.
                        refused = True
                        parts.append(delta.refusal)
                        yield Token(delta.refusal)
                    if choice.finish_reason is not None:
                        finish_reason = choice.finish_reason
                        if finish_reason in ("tool_calls", "function_call"):
                            raise BackendError(_tool_call_message(None))
            if finish_reason is None:
                # Every compatible server sends a finish_reason; a stream that ends without
                # one was cut off (proxy, crash), and its answer is incomplete.
                raise BackendError(
                    f"the stream from {self._display_url()} ended before the answer was"
                    " complete; retry, or check the server's logs"
                )
            text = "".join(parts)
            self._commit(earlier, user, text)
            committed = True
            stop_reason = _STOP_REASONS.get(finish_reason, finish_reason)
            if refused and finish_reason == "stop":
                stop_reason = "refusal"
            yield finished(
                text=text,
                stop_reason=stop_reason,
                usage=usage,
                cost_usd=0.0,  # a compatible endpoint reports no price
                started=started,
                backend_session_id=self._backend_session_id,
            )
        finally:
            # Runs on success, failure, cancel, and when the consumer abandons the turn:
            # the HTTP stream must not outlive it.
            if self._turn is turn:
                self._turn = None
            await _stop(turn.pump)
            # Keyed on interrupt() rather than on TurnCancelled, so the rule holds too when
            # the caller, having interrupted, drops the generator instead of draining it.
            if turn.cancelled and not turn.closed and not committed:
                partial = "".join(parts)
                marked = f"{partial}\n\n{INTERRUPTED_MARKER}" if partial else INTERRUPTED_MARKER
                self._commit(earlier, user, marked)

    async def configure(self, *, permission_mode: str | None, model: str | None) -> None:
        """Only the model matters here: the OpenAI backend runs no tools to permit."""
        if model is not None:
            self._config = attrs.evolve(self._config, model=model)

    async def interrupt(self) -> None:
        """Stop the running turn now: cancelling the pump task closes the HTTP stream (its
        `finally` closes the response), and the sentinel wakes `query`, which raises
        TurnCancelled without waiting for the server."""
        turn = self._turn
        if turn is None or turn.cancelled:
            return
        turn.cancelled = True
        turn.queue.put_nowait(_CANCELLED)
        if turn.pump is not None:
            turn.pump.cancel()

    async def close(self) -> None:
        """Drop the history and the client. A later query starts a fresh conversation."""
        turn, self._turn = self._turn, None
        if turn is not None:
            # Only reachable if a caller abandoned a turn's generator without closing it;
            # the sentinel makes that generator fail instead of waiting forever.
            turn.closed = True
            turn.queue.put_nowait(_CLOSED)
            await _stop(turn.pump)
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        self._api_key = ""
        self._history = self._base_history()
        self._seeded = False
        self._backend_session_id = _new_conversation_id()

    # -- internals -------------------------------------------------------------------------

    async def _chunks(
        self, client: openai.AsyncOpenAI, messages: list[ChatCompletionMessageParam]
    ) -> AsyncIterator[ChatCompletionChunk]:
        """The turn's stream, closed however it ends. It is pumped into the turn's queue by
        a task of its own, so `interrupt` can cancel it while it waits on the network
        (connecting, or between chunks), which an `async for` in `query` could not be
        woken from."""
        stream = await client.chat.completions.create(
            model=self._config.model or DEFAULT_MODEL,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.close()

    def _commit(
        self,
        earlier: list[ChatCompletionMessageParam],
        user: ChatCompletionMessageParam,
        answer: str,
    ) -> None:
        self._history = [*earlier, user, _message("assistant", answer)]
        self._seeded = True

    def _base_history(self) -> list[ChatCompletionMessageParam]:
        prompt = self._settings.system_prompt
        return [_message("system", prompt)] if prompt else []

    def _timeout_seconds(self) -> float:
        configured = self._config.request_timeout_seconds
        return configured if configured and configured > 0 else DEFAULT_TIMEOUT_SECONDS

    def _display_url(self) -> str:
        """The base URL without credentials or query, safe to show."""
        raw = self._settings.base_url or ""
        try:
            parts = urlsplit(raw)
        except ValueError:
            return raw
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", "")) or raw

    def _backend_error(self, err: BaseException) -> BackendError:
        """One line a person can act on; the key redacted whatever the endpoint echoed."""
        text = _describe(err, self._display_url(), self._config, self._settings)
        return BackendError(logs.redact(text, self._api_key))


def _describe(err: BaseException, url: str, config: SessionConfig, settings: OpenAIOptions) -> str:
    key_env = settings.api_key_env or "OPENAI_API_KEY"
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        detail = _endpoint_message(err)
        hint = {
            401: f"check openai.apiKeyEnv ({key_env}) and the key it holds",
            403: f"check that the key in {key_env} may use this model",
            404: f"check model ({config.model or DEFAULT_MODEL}) and openai.baseUrl ({url})",
            429: "the endpoint is rate limiting or out of quota; wait and retry",
        }.get(status)
        if hint is None:
            hint = (
                "the server failed; retry, or check its logs"
                if status >= 500
                else f"check model ({config.model or DEFAULT_MODEL}) and the context length"
            )
        return f"OpenAI-compatible endpoint answered {status}: {detail}; {hint}"
    if isinstance(err, openai.APITimeoutError):
        if _has_named(err, "ConnectTimeout"):
            return (
                f"cannot reach {url}: no connection within {CONNECT_TIMEOUT_SECONDS:g} s;"
                " check openai.baseUrl and that the server runs"
            )
        total = config.request_timeout_seconds or DEFAULT_TIMEOUT_SECONDS
        return (
            f"no answer from {url} within {total:g} s;"
            " raise requestTimeoutSeconds or check the server"
        )
    if isinstance(err, openai.APIConnectionError):
        causes = list(_chain(err))
        if any(isinstance(e, ConnectionRefusedError) for e in causes):
            return f"cannot reach {url}: connection refused; check openai.baseUrl"
        if any(isinstance(e, socket.gaierror) for e in causes):
            return f"cannot reach {url}: host not found; check openai.baseUrl"
        if _has_named(err, "ConnectError"):
            return f"cannot reach {url}: {one_line(str(causes[-1]))}; check openai.baseUrl"
        # Connected, then the connection broke (server crashed or a proxy cut the stream).
        reason = one_line(str(causes[-1])) if len(causes) > 1 else "connection lost"
        return f"the connection to {url} broke mid-answer ({reason}); retry"
    if isinstance(err, openai.APIError):
        # An `error` object inside the SSE stream: the endpoint failed after answering 200.
        return f"OpenAI-compatible endpoint reported an error mid-answer: {one_line(err.message)}"
    return f"OpenAI backend failed: {type(err).__name__}: {one_line(str(err))}"


def _endpoint_message(err: openai.APIStatusError) -> str:
    """The endpoint's own words: `error.message` of an OpenAI error body (the client already
    unwrapped `error`), else the body as text, else the client's summary."""
    body = err.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error")
        if isinstance(message, str) and message:
            return one_line(message)
    if isinstance(body, str) and body.strip():
        return one_line(body)
    return one_line(err.message)


def _chain(err: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and members of exception groups in them."""
    seen: set[int] = set()
    stack = [err]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                stack.append(nxt)


def _has_named(err: BaseException, class_name: str) -> bool:
    """Whether the chain holds a transport error of that name. By name, not by class: the
    client's HTTP library is httpx in openai 1.x and httpx2 in 3.x, with the same names."""
    return any(type(e).__name__ == class_name for e in _chain(err))


def _message(role: str, content: str) -> ChatCompletionMessageParam:
    # The protocol's transcript has only user and assistant; anything else is sent as the
    # user's words rather than as an instruction the editor never meant to give.
    if role == "assistant":
        return {"role": "assistant", "content": content}
    if role == "system":
        return {"role": "system", "content": content}
    return {"role": "user", "content": content}


def _reasoning_text(delta: object) -> str | None:
    """`reasoning_content` (DeepSeek, vLLM, llama.cpp) or `reasoning` (Ollama, OpenRouter):
    extra fields the typed delta keeps but does not declare."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(delta, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def _tool_name(choice: object) -> str | None:
    delta = getattr(choice, "delta", None)
    for call in getattr(delta, "tool_calls", None) or []:
        function = getattr(call, "function", None)
        if function is not None and function.name:
            return str(function.name)
    function_call = getattr(delta, "function_call", None)
    if function_call is not None and function_call.name:
        return str(function_call.name)
    return None


def _tool_call_message(name: str | None) -> str:
    what = f"the tool {name}" if name else "a tool"
    return (
        f"the model asked to call {what}, but the OpenAI backend does not support tool"
        " calling yet; ask for the answer as text, or use the claude backend"
    )


def _new_conversation_id() -> str:
    return f"openai-{uuid.uuid4()}"


async def _stop(task: asyncio.Task[None] | None) -> None:
    """Cancel the pump and wait until it has closed its stream. `asyncio.wait` does not
    raise the task's CancelledError, yet still lets our own caller's cancel through."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    await asyncio.wait({task})
