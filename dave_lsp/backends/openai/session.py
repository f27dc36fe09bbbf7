"""The OpenAI-compatible backend: chat completions streamed from any endpoint that speaks
the OpenAI HTTP API (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio, ...), as an agent
that runs tools.

The HTTP API is stateless, so `OpenAISession` owns the session's conversation: an optional
system prompt, then the user's prompts and the model's answers (with their tool calls and
tool results), sent whole on every request. The history is seeded from the editor's
transcript on the first query and dropped by `close()`.

A turn is a loop of requests (openai_tools.py has the tools): each streamed answer's
`tool_calls` are assembled from their deltas and run in order, each through the session's
permission callback as the Claude backend's tools are, and their results go back as `tool`
messages; the turn ends when the model answers without tools, or after `openai.maxSteps`
requests. The permission mode is applied here (the Claude CLI applies it itself there):
read-only tools in the cwd and the editor's tools run without asking; Write, Edit and Bash
ask in `default`; `acceptEdits` lets file edits in the cwd through; `plan` refuses all but
read-only tools; `bypassPermissions` asks nothing.

Rules this module keeps (the protocol leaves them to the backend):

- A turn's messages join the history only when the turn ends. A failed turn that ran no
  tool leaves the history exactly as it was, so retrying the same prompt is clean; one that
  ran tools keeps the steps it completed (their effects are real), closed by a note that
  says how the turn ended.
- A cancelled turn is kept: the user message, the completed steps, then the partial answer
  the user already saw followed by the marker ``[interrupted]`` (just the marker when
  nothing arrived yet); a tool call that never ran gets a result saying so. This matches
  what the editor shows and what the Claude backend does with an interrupted turn, and it
  keeps every tool call answered, which the API and chat templates insist on.
- An endpoint or model without tool support (`openai.tools: false`, or an HTTP 4xx that says
  tools are unsupported) is a chat for the rest of the session; the user is told once, in a
  `status` report.
- The base URL is `openai.baseUrl`, else OPENAI_BASE_URL. The API key is read from the
  environment variable named by `openai.apiKeyEnv` (default OPENAI_API_KEY); both are
  looked up first in `initializationOptions.env`, then in the server's environment. A key
  is required because the official client requires one; local servers that ignore keys
  (Ollama, llama.cpp) accept any non-empty value. The key never appears in a message or log:
  it is remembered by `logs` like every secret, and every error text passes through
  `logs.redact` with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from dave_lsp import logs
from dave_lsp.backends.base import (
    Attachment,
    ChatMessage,
    PermissionAnswer,
    PermissionAsker,
    SessionConfig,
    ToolObserver,
)
from dave_lsp.backends.common import Ended, finished, one_line, pump
from dave_lsp.backends.openai import tools
from dave_lsp.backends.registry import OpenAIOptions, options_of
from dave_lsp.events import (
    BackendError,
    Event,
    PermissionResolved,
    Status,
    Thinking,
    Token,
    ToolResult,
    ToolUse,
    TurnCancelled,
    Usage,
)
from dave_lsp.permissions import settings_rules
from dave_lsp.tools.summaries import describe_tool_use, format_tool_summary

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MODEL: Final = "gpt-4o-mini"
"""Used when neither `model` nor the query names one. Local servers need a real name."""

DEFAULT_TIMEOUT_SECONDS: Final = 300.0
"""Longest silence allowed on a request (connect, first byte, or between two chunks).

Generous because a local server may load a model before its first byte, and a reasoning
model may think for a long time before its first streamed delta."""

CONNECT_TIMEOUT_SECONDS: Final = 10.0
"""A server that takes longer than this to accept a TCP connection is not there."""

INTERRUPTED_MARKER: Final = "[interrupted]"
NOT_RUN: Final = "[interrupted] The user stopped the turn before this tool ran."
BASH_STATUS_INTERVAL: Final = 0.5
"""Seconds between two `status` lines of a running command's output."""

_STOP_REASONS: Final = {"stop": "end_turn", "length": "max_tokens"}
# Words of the 4xx answers with which servers refuse tools: Ollama ("does not support
# tools"), vLLM ("auto" tool choice requires --enable-auto-tool-choice), llama.cpp
# ("tools param requires --jinja flag"), pydantic-strict servers ("extra fields").
_NO_TOOLS_WORDS: Final = (
    "support",
    "enable",
    "require",
    "jinja",
    "not allowed",
    "extra",
    "unknown",
)


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
    # A permission question or tool that runs now: interrupt() cancels it.
    task: asyncio.Future[Any] | None = None
    cancelled: bool = False  # interrupt() was called: the turn ends as TurnCancelled
    closed: bool = False  # close() was called: the turn's history no longer exists
    direct: Callable[[Event], None] | None = None  # for status lines while a tool runs


@attrs.define
class _Call:
    """One tool call, assembled from its streamed deltas."""

    id: str = ""
    name: str = ""
    arguments: list[str] = attrs.field(factory=list)


@attrs.define
class _Step:
    """One request of the turn: its answer as it streams in."""

    text: list[str] = attrs.field(factory=list)
    calls: dict[int, _Call] = attrs.field(factory=dict)
    finish_reason: str | None = None
    refused: bool = False
    usage: Usage | None = None


@attrs.define
class _Trail:
    """The turn's own messages after the prompt (assistant tool calls and tool results),
    and the calls of the newest assistant message that have no result yet."""

    messages: list[ChatCompletionMessageParam] = attrs.field(factory=list)
    unanswered: list[str] = attrs.field(factory=list)

    def answer(self, call_id: str, content: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
        if call_id in self.unanswered:
            self.unanswered.remove(call_id)

    def closed(self) -> list[ChatCompletionMessageParam]:
        """The messages with every call answered (the ones that never ran say so)."""
        for call_id in list(self.unanswered):
            self.answer(call_id, NOT_RUN)
        return self.messages


class OpenAISession:
    """One conversation with an OpenAI-compatible endpoint; satisfies `BackendSession`."""

    def __init__(
        self, config: SessionConfig, ask: PermissionAsker, observer: ToolObserver | None = None
    ) -> None:
        self._config = config
        self._settings = options_of(config, OpenAIOptions)
        self._ask = ask
        self._observer = observer
        self._client: openai.AsyncOpenAI | None = None
        self._api_key = ""
        self._history: list[ChatCompletionMessageParam] = self._base_history()
        self._seeded = False
        self._turn: _Turn | None = None
        self._backend_session_id = _new_conversation_id()
        # Why tools are off for this session ("" while they are on), and whether the user
        # has been told.
        self._tools_off = "" if self._settings.tools else "openai.tools is false"
        self._told_tools_off = False

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

    @property
    def tools_on(self) -> bool:
        """Whether the next request offers the model tools."""
        return not self._tools_off

    async def open(self, warm_up: bool = False) -> None:
        """Check the settings and build the client. No request is sent: an endpoint is
        only known to be alive once it answers a turn, and probing (`GET /models`) is not
        something every compatible server implements."""
        if self._client is not None:
            return
        base_url = self._base_url()
        if not base_url:
            raise BackendError(
                "no OpenAI-compatible endpoint configured: set initializationOptions.openai.baseUrl"
                " or OPENAI_BASE_URL (e.g. http://localhost:11434/v1 for Ollama)"
            )
        if self._settings.max_steps < 1:
            raise BackendError("initializationOptions.openai.maxSteps must be at least 1")
        key_env = self._settings.api_key_env or "OPENAI_API_KEY"
        key = self._env(key_env)
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
        attachments: Sequence[Attachment] = (),
    ) -> AsyncIterator[Event]:
        """Run one turn: requests and tools until the model answers without tools. See
        the module docstring for what the history keeps."""
        # `direct` carries only the status lines of a running command: everything else is
        # read in this very generator, with no hop between tasks to save.
        await self.open()
        client = self._client
        assert client is not None
        started = time.monotonic()
        # The transcript counts only while this session has no conversation of its own; it
        # is committed with the turn, so a failed first turn is seeded again by the retry.
        earlier = list(self._history)
        if not self._seeded:
            earlier.extend(_message(m.role, m.content) for m in transcript)
        user = _user_message(prompt, attachments)

        turn = _Turn(direct=direct)
        self._turn = turn
        parts: list[str] = []  # the whole turn's text, every step's
        trail = _Trail()
        step = _Step()
        committed = False
        ending = ""  # how a failed turn that ran tools ended, for the history
        try:
            yield Status("working")
            if self._tools_off and not self._told_tools_off:
                self._told_tools_off = True
                yield Status("working", self._tools_off_notice())
            usage = Usage()
            for number in range(1, self._settings.max_steps + 1):
                if turn.cancelled:
                    raise TurnCancelled()
                step = _Step()
                messages = [*earlier, user, *trail.messages]
                async for event in self._stream_step(client, messages, turn, step):
                    yield event
                parts += step.text
                usage = _added(usage, step.usage)
                calls = [step.calls[i] for i in sorted(step.calls)]
                if not calls:
                    break
                if self._tools_off:
                    raise BackendError(_tool_call_message(calls[0].name or None, self._tools_off))
                trail.messages.append(_assistant("".join(step.text), calls))
                trail.unanswered = [c.id for c in calls]
                step = _Step()  # its text is in the trail now
                for call in calls:
                    async for event in self._call_tool(turn, call, trail):
                        yield event
                if number == self._settings.max_steps:
                    bound = self._settings.max_steps
                    ending = f"[stopped: the turn reached openai.maxSteps ({bound} requests)]"
                    raise BackendError(
                        f"the model made {bound} requests in this turn without finishing"
                        f" (openai.maxSteps is {bound}); the turn was stopped:"
                        " ask it to go on, or raise openai.maxSteps"
                    )
            finish_reason = step.finish_reason or "stop"
            text = "".join(parts)
            self._commit(earlier, user, trail.closed(), "".join(step.text))
            committed = True
            stop_reason = _STOP_REASONS.get(finish_reason, finish_reason)
            if step.refused and finish_reason == "stop":
                stop_reason = "refusal"
            yield finished(
                text=text,
                stop_reason=stop_reason,
                usage=usage,
                cost_usd=0.0,  # a compatible endpoint reports no price
                started=started,
                backend_session_id=self._backend_session_id,
            )
        except BackendError as exc:
            ending = ending or f"[the turn failed: {exc}]"
            raise
        finally:
            # Runs on success, failure, cancel, and when the consumer abandons the turn:
            # neither the HTTP stream nor a tool may outlive it.
            if self._turn is turn:
                self._turn = None
            await _stop(turn.pump)
            if turn.task is not None:
                turn.task.cancel()
                await asyncio.wait({turn.task})
            if not committed and not turn.closed:
                partial = "".join(step.text)
                if turn.cancelled:
                    # Keyed on interrupt() rather than on TurnCancelled, so the rule holds
                    # too when the caller, having interrupted, drops the generator.
                    marked = f"{partial}\n\n{INTERRUPTED_MARKER}" if partial else INTERRUPTED_MARKER
                    self._commit(earlier, user, trail.closed(), marked)
                elif trail.messages:
                    self._commit(earlier, user, trail.closed(), ending or "[the turn failed]")

    async def _stream_step(
        self,
        client: openai.AsyncOpenAI,
        messages: list[ChatCompletionMessageParam],
        turn: _Turn,
        step: _Step,
    ) -> AsyncIterator[Event]:
        """One request: stream its text, assemble its tool calls into `step`. A refusal of
        the tools (before anything arrived) turns them off and sends the request again."""
        while True:
            offered = self.tools_on
            turn.queue = asyncio.Queue()
            turn.pump = asyncio.create_task(
                pump(self._chunks(client, messages, offered), turn.queue.put_nowait)
            )
            while True:
                item = await turn.queue.get()
                if turn.closed or item is _CLOSED:
                    raise BackendError("the session was closed while its turn ran")
                # Checked before the item: an interrupt wins over chunks still queued.
                if turn.cancelled or item is _CANCELLED:
                    raise TurnCancelled()
                if isinstance(item, Ended):
                    break
                assert isinstance(item, ChatCompletionChunk)
                for event in _take_chunk(item, step):
                    yield event
            error = item.error
            if error is None:
                break
            refusal = _tools_refusal(error) if offered and not step.text else None
            if refusal is not None:
                self._tools_off = f"the endpoint refused them: {refusal}"
                log.info("tools off for session %s: %s", self._config.session_id, self._tools_off)
                self._told_tools_off = True
                yield Status("working", self._tools_off_notice())
                continue
            # `from None`: the client's own exception text may quote the key back (an
            # endpoint echoing it in a 401 body), and a logged traceback would show it;
            # the BackendError says everything, redacted.
            log.debug("turn failed: %s", type(error).__name__)
            raise self._backend_error(error) from None
        if step.finish_reason is None:
            # Every compatible server sends a finish_reason; a stream that ends without
            # one was cut off (proxy, crash), and its answer is incomplete.
            raise BackendError(
                f"the stream from {self._display_url()} ended before the answer was"
                " complete; retry, or check the server's logs"
            )

    async def _call_tool(self, turn: _Turn, call: _Call, trail: _Trail) -> AsyncIterator[Event]:
        """Report, permit, run and answer one tool call; its result joins `trail`."""
        cwd = self._config.cwd
        call_input, bad_arguments = _arguments(call)
        yield ToolUse(call.id, call.name, call_input, describe_tool_use(call.name, call_input, cwd))
        editor = self._config.editor
        if bad_arguments:
            output = tools.Output(bad_arguments, is_error=True)
        elif call.name not in tools.BUILTIN and not tools.is_editor_tool(call.name, editor):
            output = tools.Output(f"No such tool: {call.name}.", is_error=True)
        else:
            verdict: tools.Verdict = (
                "allow"
                if call.name not in tools.BUILTIN  # the editor's tools only read
                else tools.gate(call.name, call_input, self._config.permission_mode, cwd)
            )
            config = self._config
            if (
                verdict == "allow"
                and call.name in tools.BUILTIN
                and await asyncio.to_thread(
                    settings_rules.speaks, call.name, call_input, cwd, config.env, config.trusted
                )
            ):
                verdict = "ask"  # the user's deny or ask rule: the policy applies it
            if verdict == "allow":
                yield PermissionResolved(f"auto-{call.id}", "allow", "mode")
                answer = PermissionAnswer(allow=True)
            elif verdict == "deny":
                yield PermissionResolved(f"auto-{call.id}", "deny", "mode")
                answer = PermissionAnswer(allow=False, reason=tools.PLAN_MODE_REASON)
            else:
                answer = await self._interruptible(
                    turn, self._ask(call.id, call.name, call_input, [], None)
                )
                if not answer.allow and answer.interrupt:
                    if turn.cancelled:
                        raise TurnCancelled()
                    raise BackendError(f"the turn was stopped: {answer.reason or 'denied'}")
            if answer.allow:
                call_input = answer.updated_input or call_input
                output = await self._interruptible(turn, self._run(turn, call, call_input))
            else:
                output = tools.Output(_denied(answer.reason), is_error=True)
        summary = format_tool_summary(
            call.name, call_input, output.text, output.structured, cwd, output.is_error
        )
        trail.answer(call.id, output.text)
        yield ToolResult(call.id, call.name, summary, output.is_error)

    async def _run(self, turn: _Turn, call: _Call, call_input: dict[str, Any]) -> tools.Output:
        """Run an allowed tool; file tools between the observer's hooks, so the session
        snapshots the file first and lands the user's edited version after."""
        observer = self._observer if call.name in tools.FILE_EDITS else None
        if observer is not None:
            await observer.before_tool(call.id, call.name, call_input)
        output = await tools.run(
            call.name,
            call_input,
            self._config.cwd,
            self._config.env,
            self._config.editor,
            self._status_lines(turn) if call.name == "Bash" else None,
        )
        if observer is not None and not output.is_error:
            told = await observer.after_tool(call.id, call.name)
            if told:
                output = attrs.evolve(output, text=f"{output.text}\n\n{told}")
        return output

    def _status_lines(self, turn: _Turn) -> Callable[[str], None] | None:
        """A running command's output as `status` lines (the protocol has no report for a
        tool's progress; `message` on a status report is its status-bar line), at most one
        per BASH_STATUS_INTERVAL."""
        direct = turn.direct
        if direct is None:
            return None
        last = 0.0

        def show(text: str) -> None:
            nonlocal last
            now = time.monotonic()
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines and now - last >= BASH_STATUS_INTERVAL and not turn.cancelled:
                last = now
                direct(Status("working", f"Bash: {one_line(lines[-1], 100)}"))

        return show

    async def _interruptible(self, turn: _Turn, work: Awaitable[T]) -> T:
        """Await `work` as a task `interrupt` can cancel; its cancel is TurnCancelled."""
        task = asyncio.ensure_future(work)
        turn.task = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if turn.cancelled and (current is None or not current.cancelling()):
                raise TurnCancelled() from None
            raise
        finally:
            turn.task = None

    async def configure(self, *, permission_mode: str | None, model: str | None) -> None:
        """The mode applies from the next tool call on; a new model gets tools again (a
        refusal was the old model's)."""
        if permission_mode is not None:
            self._config = attrs.evolve(self._config, permission_mode=permission_mode)
        if model is not None and model != self._config.model:
            self._config = attrs.evolve(self._config, model=model)
            if self._settings.tools and self._tools_off:
                self._tools_off, self._told_tools_off = "", False

    async def commands(self) -> list[dict[str, str]]:
        """An OpenAI-compatible endpoint has no slash commands."""
        return []

    async def interrupt(self) -> None:
        """Stop the running turn now: cancelling the pump task closes the HTTP stream (its
        `finally` closes the response), and the sentinel wakes `query`, which raises
        TurnCancelled without waiting for the server. A running tool or permission
        question is cancelled too (a command's whole process group is killed)."""
        turn = self._turn
        if turn is None or turn.cancelled:
            return
        turn.cancelled = True
        turn.queue.put_nowait(_CANCELLED)
        if turn.pump is not None:
            turn.pump.cancel()
        if turn.task is not None:
            turn.task.cancel()

    async def close(self) -> None:
        """Drop the history and the client. A later query starts a fresh conversation."""
        turn, self._turn = self._turn, None
        if turn is not None:
            # Only reachable if a caller abandoned a turn's generator without closing it;
            # the sentinel makes that generator fail instead of waiting forever.
            turn.closed = True
            turn.queue.put_nowait(_CLOSED)
            await _stop(turn.pump)
            if turn.task is not None:
                turn.task.cancel()
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        self._api_key = ""
        self._history = self._base_history()
        self._seeded = False
        self._backend_session_id = _new_conversation_id()

    # -- internals -------------------------------------------------------------------------

    async def _chunks(
        self,
        client: openai.AsyncOpenAI,
        messages: list[ChatCompletionMessageParam],
        offer_tools: bool,
    ) -> AsyncIterator[ChatCompletionChunk]:
        """One request's stream, closed however it ends. It is pumped into the turn's queue
        by a task of its own, so `interrupt` can cancel it while it waits on the network
        (connecting, or between chunks), which an `async for` in `query` could not be
        woken from."""
        # No tool_choice or parallel_tool_calls: "auto" is the default, and several
        # servers reject or ignore those fields.
        extra: dict[str, Any] = {"tools": tools.specs(self._config.editor)} if offer_tools else {}
        stream = await client.chat.completions.create(
            model=self._config.model or DEFAULT_MODEL,
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

    def _commit(
        self,
        earlier: list[ChatCompletionMessageParam],
        user: ChatCompletionMessageParam,
        trail: list[ChatCompletionMessageParam],
        answer: str,
    ) -> None:
        self._history = [*earlier, user, *trail, _message("assistant", answer)]
        self._seeded = True

    def _env(self, name: str) -> str | None:
        """A variable of initializationOptions.env, else of the server's environment."""
        value = self._config.env.get(name)
        return value if value is not None else os.environ.get(name)

    def _base_url(self) -> str:
        return (self._settings.base_url or self._env("OPENAI_BASE_URL") or "").strip()

    def _tools_off_notice(self) -> str:
        model = self._config.model or DEFAULT_MODEL
        return f"Tools are off for {model} ({self._tools_off}): this session chats without tools."

    def _base_history(self) -> list[ChatCompletionMessageParam]:
        prompt = self._settings.system_prompt
        return [_message("system", prompt)] if prompt else []

    def _timeout_seconds(self) -> float:
        configured = self._config.request_timeout_seconds
        return configured if configured and configured > 0 else DEFAULT_TIMEOUT_SECONDS

    def _display_url(self) -> str:
        """The base URL without credentials or query, safe to show."""
        raw = self._base_url()
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


def _user_message(prompt: str, attachments: Sequence[Attachment]) -> ChatCompletionMessageParam:
    """The prompt, with its images as `image_url` parts (data URLs) when it has any; a
    model that takes no images makes the endpoint answer with an error."""
    if not attachments:
        return _message("user", prompt)
    parts: list[Any] = [{"type": "text", "text": prompt}]
    parts += [
        {"type": "image_url", "image_url": {"url": f"data:{a.media_type};base64,{a.data}"}}
        for a in attachments
    ]
    return {"role": "user", "content": parts}


def _reasoning_text(delta: object) -> str | None:
    """`reasoning_content` (DeepSeek, vLLM, llama.cpp) or `reasoning` (Ollama, OpenRouter):
    extra fields the typed delta keeps but does not declare."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(delta, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def _take_chunk(chunk: ChatCompletionChunk, step: _Step) -> list[Event]:
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
            call = step.calls.setdefault(index, _Call())
            call.id = call.id or (piece.id or "")
            function = piece.function
            if function is not None:
                call.name = call.name or (function.name or "")
                if function.arguments:
                    call.arguments.append(function.arguments)
        if delta.function_call is not None:  # the API's legacy single-function form
            call = step.calls.setdefault(0, _Call())
            call.name = call.name or (delta.function_call.name or "")
            if delta.function_call.arguments:
                call.arguments.append(delta.function_call.arguments)
        reasoning = _reasoning_text(delta)
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


def _arguments(call: _Call) -> tuple[dict[str, Any], str]:
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


def _assistant(text: str, calls: list[_Call]) -> ChatCompletionMessageParam:
    return {
        "role": "assistant",
        # Some chat templates choke on null content next to tool calls; "" is safe.
        "content": text,
        "tool_calls": [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": "".join(c.arguments) or "{}"},
            }
            for c in calls
        ],
    }


def _denied(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        return "The user denied this tool use."
    return reason if reason.startswith("The ") else f"The user denied this tool use: {reason}"


def _added(total: Usage, step: Usage | None) -> Usage:
    """The turn's usage after one more request (its context: the newest request's)."""
    if step is None:
        return total
    return Usage(
        input_tokens=total.input_tokens + step.input_tokens,
        output_tokens=total.output_tokens + step.output_tokens,
        context_tokens=step.input_tokens + step.output_tokens,
    )


def _tools_refusal(err: BaseException) -> str | None:
    """The endpoint's words when a 4xx answer says the model or server takes no tools."""
    if not isinstance(err, openai.APIStatusError) or not 400 <= err.status_code < 500:
        return None
    if err.status_code in (401, 403, 404, 429):
        return None
    detail = _endpoint_message(err)
    lowered = detail.lower()
    if "tool" in lowered and any(word in lowered for word in _NO_TOOLS_WORDS):
        return detail
    return None


def _tool_call_message(name: str | None, why: str) -> str:
    what = f"the tool {name}" if name else "a tool"
    return (
        f"the model asked to call {what}, but tools are off for this session ({why});"
        " ask for the answer as text, or set openai.tools to true for a model that calls tools"
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
