"""`dave-lsp chat`'s own slash commands, carried out by the chat rather than sent to the
model: `/rewind N [--keep-files]` (`dave/rewind`) and `/fork [N]` (`dave/fork`, after
which the chat goes on in the fork). They are the ones `dave/listCommands` lists with
`source: "dave-lsp"` (outgoing.OWN_COMMANDS); any other prompt goes to the session.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import attrs

from dave_lsp.lsp.chat_terminal import Terminal
from dave_lsp.lsp.protocol import FORK, REWIND

USAGE = {
    "rewind": "/rewind N [--keep-files]: back to before turn N (its files and the conversation)",
    "fork": "/fork [N]: go on in a new session holding turns 1 to N (default: all)",
}


class Requester(Protocol):
    """The chat's client (chat_client.ChatClient): its session and one request."""

    session_id: str

    async def request(self, method: str, params: dict[str, Any]) -> Any: ...


@attrs.frozen
class Own:
    """One of the chat's own commands, as typed."""

    name: str
    turn: int | None
    keep_files: bool = False


class UsageError(ValueError):
    """An own command typed wrong: the message says how to type it."""


def parse(prompt: str) -> Own | None:
    """The chat's own command in `prompt`, None for anything else (a prompt, or another
    slash command for the CLI); UsageError for one typed wrong."""
    words = prompt.split()
    if not words or words[0] not in ("/rewind", "/fork"):
        return None
    name, args = words[0][1:], words[1:]
    keep = name == "rewind" and "--keep-files" in args
    numbers = [a for a in args if not (keep and a == "--keep-files")]
    if len(numbers) > 1 or (numbers and not numbers[0].isdigit()):
        raise UsageError(f"usage: {USAGE[name]}")
    turn = int(numbers[0]) if numbers else None
    if name == "rewind" and turn is None:
        raise UsageError(f"usage: {USAGE[name]}")
    return Own(name, turn, keep)


async def run(own: Own, chat: Requester, term: Terminal, as_json: bool) -> dict[str, Any]:
    """Carry the command out and say what happened (notes; the result as a JSON line on
    stdout with --json). Errors are the client's ChatError."""
    if own.name == "rewind":
        params: dict[str, Any] = {"sessionId": chat.session_id, "turn": own.turn}
        if own.keep_files:
            params["files"] = False
        result = await chat.request(REWIND, params)
        _said_rewind(result, term)
    else:
        params = {"sessionId": chat.session_id}
        if own.turn is not None:
            params["turn"] = own.turn
        result = await chat.request(FORK, params)
        was, chat.session_id = chat.session_id, str(result["sessionId"])
        upto = f"turns 1 to {own.turn}" if own.turn is not None else "all its turns"
        term.note(f"forked {was} ({upto}): this chat goes on in {chat.session_id}")
    if as_json:
        term.out.write(json.dumps(result) + "\n")
        term.out.flush()
    return dict(result)


def _said_rewind(result: dict[str, Any], term: Terminal) -> None:
    turn = result.get("turn")
    term.note(f"rewound to before turn {turn}: the next prompt is turn {turn}")
    restored = result.get("restored") or []
    if restored:
        term.note("restored: " + ", ".join(map(str, restored)))
    for conflict in result.get("conflicts") or []:
        term.note(f"kept {conflict.get('path')}: {conflict.get('message')}")
