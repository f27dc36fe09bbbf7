"""The OpenAI-compatible backend: chat completions streamed from any endpoint that speaks
the OpenAI HTTP API (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio, ...), as an agent
that runs tools.

The HTTP API is stateless, so `OpenAISession` owns the session's conversation: an optional
system prompt, then the user's prompts and the model's answers (with their tool calls and
tool results), sent whole on every request. The history is seeded from the editor's
transcript on the first query and dropped by `close()`. It is written to a transcript
file as the turn goes (transcript.py), from which a later session of the same
conversation (`SessionConfig.resume`: after a restart or an eviction) continues.

A turn is a loop of requests: each streamed answer's `tool_calls` are assembled from
their deltas (stream.py) and run in order by the tool loop (calls.py: the mode's gate,
the session's permission callback as the Claude backend's tools have it, the tools of
tools.py), and their results go back as `tool` messages (messages.py); the turn ends
when the model answers without tools, or after `openai.maxSteps` requests. The
permission mode is applied here (the Claude CLI applies it itself there), by
permissions/modes.py's gate. endpoint.py reaches the endpoint, errors.py puts its
failures in words.

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
- The base URL and the API key are read as endpoint.py says; the key never appears in a
  message or log: every error text passes through `logs.redact` with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

import attrs
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from dave_lsp import logs
from dave_lsp.backends.base import (
    Attachment,
    ChatMessage,
    PermissionAsker,
    SessionConfig,
    ToolObserver,
)
from dave_lsp.backends.common import Ended, finished, pump
from dave_lsp.backends.openai import endpoint, errors, stream, transcript
from dave_lsp.backends.openai.calls import call_tool, interruptible
from dave_lsp.backends.openai.history import Conversation
from dave_lsp.backends.openai.mcp_tools import McpTools
from dave_lsp.backends.openai.messages import Trail, assistant, message, user_message
from dave_lsp.backends.openai.stream import (
    CANCELLED,
    CLOSED,
    DEFAULT_MODEL,
    STOP_REASONS,
    Step,
    Turn,
    added,
    take_chunk,
)
from dave_lsp.backends.registry import OpenAIOptions, options_of
from dave_lsp.events import BackendError, Event, Status, TurnCancelled, Usage

log = logging.getLogger(__name__)

INTERRUPTED_MARKER: Final = "[interrupted]"


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
        self._history: list[ChatCompletionMessageParam] = _base_history(self._settings)
        self._starts: list[int] = []  # where each turn's prompt is in the history
        self._seeded = False
        self._turn: Turn | None = None
        self._backend_session_id = transcript.new_id()
        self._kept = transcript.Kept(config.env)  # the conversation on disk
        # Why tools are off for this session ("" while they are on), and whether the user
        # has been told.
        self._tools_off = "" if self._settings.tools else "openai.tools is false"
        self._told_tools_off = False
        self._mcp = McpTools(config)  # its servers start at the first turn

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
    def conversation(self) -> Conversation:
        """The history with its turns (dave/rewind and dave/fork cut it: `first`)."""
        return Conversation(tuple(self._history), tuple(self._starts))

    def restore(self, conversation: Conversation, write: bool = True) -> None:
        """Continue `conversation` from here on (a cut of this one, or a fork's copy), as
        a new one in a file of its own: the original's stays for what still reads it."""
        if write and conversation != self.conversation:
            self._backend_session_id = transcript.new_id()
            self._kept.rewrite(self._backend_session_id, conversation)
        self._history, self._starts = list(conversation.messages), list(conversation.starts)
        self._seeded = bool(conversation.starts)

    @property
    def tools_on(self) -> bool:
        """Whether the next request offers the model tools."""
        return not self._tools_off

    async def open(self, warm_up: bool = False) -> str | None:
        """Check the settings, build the client, read back the conversation to resume. No
        request is sent: an endpoint is only known to be alive once it answers a turn,
        and probing (`GET /models`) is not something every compatible server implements."""
        if self._client is None:
            self._client, self._api_key = endpoint.connect(self._config, self._settings)
        if self._kept.resumed or self._seeded:
            return None
        base = _base_history(self._settings)
        found = await asyncio.to_thread(self._kept.resume, self._config, base)
        if found.conversation is not None:
            self._backend_session_id = found.conversation_id
            self.restore(found.conversation, write=False)
        return found.notice

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
            earlier.extend(message(m.role, m.content) for m in transcript)
        user = user_message(prompt, attachments)

        turn = Turn(direct=direct)
        self._turn = turn
        parts: list[str] = []  # the whole turn's text, every step's
        trail = Trail()
        step = Step()
        committed = False
        ending = ""  # how a failed turn that ran tools ended, for the history
        try:
            yield Status("working")
            for notice in await _notices(self, turn):
                yield Status("working", notice)
            usage = Usage()
            for number in range(1, self._settings.max_steps + 1):
                if turn.cancelled:
                    raise TurnCancelled()
                step = Step()
                messages = [*earlier, user, *trail.messages]
                async for event in self._stream_step(client, messages, turn, step):
                    yield event
                parts += step.text
                usage = added(usage, step.usage)
                calls = [step.calls[i] for i in sorted(step.calls)]
                if not calls:
                    break
                if self._tools_off:
                    raise BackendError(
                        errors.tool_call_message(calls[0].name or None, self._tools_off)
                    )
                trail.messages.append(assistant("".join(step.text), calls))
                trail.unanswered = [c.id for c in calls]
                step = Step()  # its text is in the trail now
                for call in calls:
                    tool_call = call_tool(
                        turn, call, trail, self._config, self._ask, self._observer, self._mcp
                    )
                    async for event in tool_call:
                        yield event
                # The round is on disk before the next request: a crash keeps what ran.
                so_far, starts = [*earlier, user, *trail.messages], [*self._starts, len(earlier)]
                self._kept.sync(self._backend_session_id, so_far, starts)
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
            stop_reason = STOP_REASONS.get(finish_reason, finish_reason)
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
            await stream.stop(turn.pump)
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
        turn: Turn,
        step: Step,
    ) -> AsyncIterator[Event]:
        """One request: stream its text, assemble its tool calls into `step`. A refusal of
        the tools (before anything arrived) turns them off and sends the request again."""
        while True:
            offered = self.tools_on
            request = _request(client, self._config, messages, offered, self._mcp)
            turn.queue = asyncio.Queue()
            turn.pump = asyncio.create_task(pump(request, turn.queue.put_nowait))
            while True:
                item = await turn.queue.get()
                if turn.closed or item is CLOSED:
                    raise BackendError("the session was closed while its turn ran")
                # Checked before the item: an interrupt wins over chunks still queued.
                if turn.cancelled or item is CANCELLED:
                    raise TurnCancelled()
                if isinstance(item, Ended):
                    break
                assert isinstance(item, ChatCompletionChunk)
                for event in take_chunk(item, step):
                    yield event
            error = item.error
            if error is None:
                break
            refusal = errors.tools_refusal(error) if offered and not step.text else None
            if refusal is not None:
                self._tools_off = f"the endpoint refused them: {refusal}"
                log.info("tools off for session %s: %s", self._config.session_id, self._tools_off)
                self._told_tools_off = True
                yield Status("working", _tools_off_notice(self._config, self._tools_off))
                continue
            # `from None`: the client's own exception text may quote the key back (an
            # endpoint echoing it in a 401 body), and a logged traceback would show it;
            # the BackendError says everything, redacted.
            log.debug("turn failed: %s", type(error).__name__)
            raise _backend_error(error, self._config, self._settings, self._api_key) from None
        if step.finish_reason is None:
            # Every compatible server sends a finish_reason; a stream that ends without
            # one was cut off (proxy, crash), and its answer is incomplete.
            raise BackendError(
                f"the stream from {endpoint.display_url(self._config, self._settings)} ended"
                " before the answer was complete; retry, or check the server's logs"
            )

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
        turn.queue.put_nowait(CANCELLED)
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
            turn.queue.put_nowait(CLOSED)
            await stream.stop(turn.pump)
            if turn.task is not None:
                turn.task.cancel()
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        await self._mcp.close()
        self._api_key = ""
        self._history = _base_history(self._settings)
        self._starts = []
        self._seeded = False
        self._backend_session_id = transcript.new_id()

    # -- internals -------------------------------------------------------------------------

    def _commit(
        self,
        earlier: list[ChatCompletionMessageParam],
        user: ChatCompletionMessageParam,
        trail: list[ChatCompletionMessageParam],
        answer: str,
    ) -> None:
        self._history = [*earlier, user, *trail, message("assistant", answer)]
        self._starts.append(len(earlier))
        self._seeded = True
        self._kept.sync(self._backend_session_id, self._history, self._starts, done=True)


def _request(
    client: openai.AsyncOpenAI,
    config: SessionConfig,
    messages: list[ChatCompletionMessageParam],
    offer_tools: bool,
    mcp: McpTools,
) -> AsyncIterator[ChatCompletionChunk]:
    more = mcp.specs()  # the MCP servers' tools
    return stream.request(client, config.model, messages, config.editor, offer_tools, more)


async def _notices(session: OpenAISession, turn: Turn) -> list[str]:
    """What the user is told before a turn's first request: that tools are off (once),
    which MCP servers were refused or failed to start (at the first turn)."""
    if session._tools_off:
        told, session._told_tools_off = session._told_tools_off, True
        return [] if told else [_tools_off_notice(session._config, session._tools_off)]
    return await interruptible(turn, session._mcp.start())


def _backend_error(
    err: BaseException, config: SessionConfig, settings: OpenAIOptions, api_key: str
) -> BackendError:
    """One line a person can act on; the key redacted whatever the endpoint echoed."""
    url = endpoint.display_url(config, settings)
    return BackendError(logs.redact(errors.describe(err, url, config, settings), api_key))


def _tools_off_notice(config: SessionConfig, why: str) -> str:
    model = config.model or DEFAULT_MODEL
    return f"Tools are off for {model} ({why}): this session chats without tools."


def _base_history(settings: OpenAIOptions) -> list[ChatCompletionMessageParam]:
    prompt = settings.system_prompt
    return [message("system", prompt)] if prompt else []
