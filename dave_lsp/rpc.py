"""What both front ends (LSP and ACP) and the domain share about JSON-RPC: the error
codes, `ParamsError`, the strict camelCase converter that params and
`initializationOptions` are structured with, what a query carries besides its prompt,
and `TextCoalescer`, which streams a turn's text to either client.

It lives below both front ends so that neither imports the other, and the session
layer and config.py raise `ParamsError` without importing a front end. Params are
structured strictly: a number is not silently a string, and every error names the
field (`sessionId: expected a string`), because the message goes to a person who has
to fix their client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

# JSON-RPC 2.0's codes, and the ones LSP and ACP add.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# LSP's "server not initialized" and ACP's "resource not found" share a number.
SERVER_NOT_INITIALIZED = -32002
RESOURCE_NOT_FOUND = -32002
REQUEST_CANCELLED = -32800
REQUEST_FAILED = -32803


# The session's permission mode, as both front ends and `initializationOptions` name it.
PermissionMode = Literal["default", "acceptEdits", "plan", "bypassPermissions"]


class ParamsError(ValueError):
    """Params that do not fit the protocol; the message names the field. The domain
    raises it without a method name; each front end adds its own."""


# What a query carries besides its prompt: both front ends hand these to the session
# layer (session/context.py renders and checks them).


@attrs.frozen
class Position:
    line: int
    character: int


@attrs.frozen
class Range:
    start: Position
    end: Position


@attrs.frozen
class ActiveFile:
    path: str
    language_id: str | None = None
    selection: Range | None = None
    selected_text: str | None = None


@attrs.frozen
class Mention:
    path: str
    start_line: int | None = None
    end_line: int | None = None


@attrs.frozen
class QueryContext:
    """The editor's context with a prompt."""

    active_file: ActiveFile | None = None
    mentions: list[Mention] = attrs.field(factory=list)


@attrs.frozen
class AttachmentParam:
    type: Literal["image"]
    media_type: str
    data: str


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _strict(kind: type, label: str) -> Any:
    def hook(value: Any, _: Any) -> Any:
        # bool is an int in Python; a JSON true is never a valid number here.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {label}")
        return value

    return hook


def _token(value: Any, _: Any) -> str | int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError("expected a string or an integer")
    return value


def _float(value: Any, _: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("expected a number")
    return float(value)


def _dict(value: Any, _: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value


def _string_map(value: Any, _: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError("expected an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise TypeError(f"{key}: expected a string")
    return value


def camel_overrides(cls: type) -> dict[str, Any]:
    """camelCase names; a field whose metadata says `omit_if_default` is left out while
    it holds its default."""
    return {
        a.name: override(
            rename=camel(a.name), omit_if_default=a.metadata.get("omit_if_default", False)
        )
        for a in attrs.fields(cls)
    }


def list_of(conv: cattrs.Converter, item: type) -> Any:
    """A structure hook for `list[item]` that refuses anything but an array (cattrs
    would happily iterate a string character by character)."""

    def hook(value: Any, _: Any) -> list[Any]:
        if not isinstance(value, list):
            raise TypeError("expected an array")
        items: list[Any] = []
        for index, entry in enumerate(value):
            try:
                items.append(conv.structure(entry, item))
            except Exception as exc:
                exc.add_note(cattrs.IterableValidationNote(f"index {index}", index, item))
                raise cattrs.IterableValidationError("invalid item", [exc], list) from None
        return items

    return hook


def _is_list_of(item: type) -> Any:
    def matches(kind: Any) -> bool:
        return bool(kind == list[item])  # type: ignore[valid-type]

    return matches


def make_converter(*list_items: type) -> cattrs.Converter:
    """A converter with strict primitives and camelCase keys for every attrs class;
    arrays of `str` and of each of `list_items` are checked to be arrays."""
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict(str, "a string"))
    conv.register_structure_hook(int, _strict(int, "an integer"))
    conv.register_structure_hook(bool, _strict(bool, "true or false"))
    conv.register_structure_hook(float, _float)
    conv.register_structure_hook_func(
        lambda t: t == (str | int | None), lambda v, t: None if v is None else _token(v, t)
    )
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _dict)
    for item in (str, *list_items):
        conv.register_structure_hook_func(_is_list_of(item), list_of(conv, item))
    conv.register_structure_hook_func(lambda t: t == dict[str, str], _string_map)

    def structure_factory(cls: type) -> Any:
        fields: Any = make_dict_structure_fn(cls, conv, **camel_overrides(cls))

        def hook(value: Any, kind: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError("expected an object")
            return fields(value, kind)

        return hook

    def unstructure_factory(cls: type) -> Any:
        return make_dict_unstructure_fn(cls, conv, **camel_overrides(cls))

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


def describe_error(exc: BaseException, path: str = "") -> str:
    """The first problem inside a cattrs error as `field.path: what is wrong`."""
    if isinstance(exc, cattrs.BaseValidationError) and exc.exceptions:
        sub = exc.exceptions[0]
        for note in getattr(sub, "__notes__", []):
            if isinstance(note, cattrs.AttributeValidationNote):
                return describe_error(
                    sub, f"{path}.{camel(note.name)}" if path else camel(note.name)
                )
            if isinstance(note, cattrs.IterableValidationNote):
                return describe_error(sub, f"{path}[{note.index}]")
        return describe_error(sub, path)
    if isinstance(exc, KeyError):
        what = "is required"
    elif "not in literal" in str(exc):
        choices = str(exc).split("Literal[", 1)[-1].rstrip("]").replace("'", "")
        what = f"must be one of {choices}"
    else:
        what = str(exc)
    return f"{path}: {what}" if path else what


# `initializationOptions` and ACP's own checks: no arrays of attrs types there.
converter = make_converter()


# A turn's text on its way to a client.

FLUSH_SECONDS = 0.016
FLUSH_CHARS = 4096


class TextCoalescer:
    """A turn's text, as few messages as keep it live: the first piece goes out at once
    (time to first token is what a user feels), later ones are merged for at most
    FLUSH_SECONDS or FLUSH_CHARS. `flush` before anything else is sent keeps the order
    exact. Shared by the LSP and ACP front ends; `send(kind, text)` writes one message,
    kind being "token" or "thinking"."""

    def __init__(self, send: Callable[[str, str], None]) -> None:
        self._send = send
        self._kind = ""  # what the buffer holds
        self._buffer: list[str] = []
        self._buffered = 0
        self._sent_text = False
        self._timer: asyncio.TimerHandle | None = None

    def add(self, kind: str, text: str) -> None:
        if not text:
            return
        if kind != self._kind:
            self.flush()
            self._kind = kind
        if not self._sent_text:
            self._sent_text = True
            self._send(kind, text)
            return
        self._buffer.append(text)
        self._buffered += len(text)
        if self._buffered >= FLUSH_CHARS:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            text = "".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            self._send(self._kind, text)
