"""The OpenAI backend's failures in words a person can act on: what the endpoint answered
or why it could not be reached, with the setting to check; and whether a 4xx answer says
the model or server takes no tools (the session then chats without them).

The transport's errors are matched by name along the exception chain, so the words hold
whichever HTTP library the client uses.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Final

import openai

from dave_lsp.backends.base import SessionConfig
from dave_lsp.backends.common import one_line
from dave_lsp.backends.openai.stream import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_MODEL,
    DEFAULT_TIMEOUT_SECONDS,
)
from dave_lsp.backends.registry import OpenAIOptions

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


def describe(err: BaseException, url: str, config: SessionConfig, settings: OpenAIOptions) -> str:
    key_env = settings.api_key_env or "OPENAI_API_KEY"
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        detail = endpoint_message(err)
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


def endpoint_message(err: openai.APIStatusError) -> str:
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


def tools_refusal(err: BaseException) -> str | None:
    """The endpoint's words when a 4xx answer says the model or server takes no tools."""
    if not isinstance(err, openai.APIStatusError) or not 400 <= err.status_code < 500:
        return None
    if err.status_code in (401, 403, 404, 429):
        return None
    detail = endpoint_message(err)
    lowered = detail.lower()
    if "tool" in lowered and any(word in lowered for word in _NO_TOOLS_WORDS):
        return detail
    return None


def tool_call_message(name: str | None, why: str) -> str:
    what = f"the tool {name}" if name else "a tool"
    return (
        f"the model asked to call {what}, but tools are off for this session ({why});"
        " ask for the answer as text, or set openai.tools to true for a model that calls tools"
    )
