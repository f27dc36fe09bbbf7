"""The model's questions (AskUserQuestion) as one ACP form, for clients that offer
`elicitation.form` at `initialize`.

All the questions go in one `elicitation/create {mode: "form", sessionId, toolCallId,
message, requestedSchema}`: a property per question (`q1`, `q2`, ...), titled with the
question. A single choice is a string: an `enum` of the option labels, or `oneOf`
`{const, title, description}` when an option has a description; a multiSelect one is
an array of them (`items.enum`, or `items.anyOf`). Beside each is an optional string
(`q1_other`, ...) for the user's own words. `accept` answers the tool as LSP mode's
`answers` do (a label, labels, or the user's words; own words win over a single
choice and join a multiple one); `decline`, `cancel` and an accepted empty form tell
the model the user declined. A client that answers -32601 (no such method) is asked
the old way, through `session/request_permission` (updates.py).
"""

from __future__ import annotations

from typing import Any

import attrs
import pydantic

from dave_lsp.acp import outgoing as out
from dave_lsp.acp.schema import acp
from dave_lsp.acp.transport import Connection
from dave_lsp.permissions.policy import DECLINED_QUESTIONS, Reply
from dave_lsp.rpc import ParamsError

ELICIT = "elicitation/create"
OTHER = "_other"  # the suffix of a question's own-words property

_RESPONSE: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(acp.CreateElicitationResponse)


def offers_forms(capabilities: acp.ClientCapabilities | None) -> bool:
    """Whether the client renders form elicitations (`elicitation.form` present)."""
    elicitation = capabilities.elicitation if capabilities else None
    return bool(elicitation and elicitation.form is not None)


@attrs.frozen
class Question:
    text: str
    header: str
    options: list[tuple[str, str]]  # (label, description)
    multiple: bool


def questions(details: dict[str, Any]) -> list[Question]:
    """AskUserQuestion's questions as its input gives them."""
    found = []
    for item in details.get("questions") or []:
        if not isinstance(item, dict):
            continue
        options = [
            (str(o["label"]), str(o.get("description") or ""))
            for o in item.get("options") or []
            if isinstance(o, dict) and o.get("label")
        ]
        found.append(
            Question(
                str(item.get("question") or ""),
                str(item.get("header") or ""),
                options,
                bool(item.get("multiSelect")),
            )
        )
    return found


def _choice(question: Question) -> dict[str, Any]:
    labels = [label for label, _ in question.options]
    titled = any(description for _, description in question.options)
    choices: dict[str, Any]
    if titled:
        choices = {
            "oneOf" if not question.multiple else "anyOf": [
                {"const": label, "title": label, **({"description": d} if d else {})}
                for label, d in question.options
            ]
        }
    else:
        choices = {"enum": labels}
    title = question.text or question.header or "Answer"
    if question.multiple:
        items = choices if titled else {"type": "string", **choices}
        return {"type": "array", "title": title, "items": items}
    return {"type": "string", "title": title, **choices}


def form(asked: list[Question]) -> dict[str, Any]:
    """The `requestedSchema` of the questions (nothing required: own words may stand
    for a choice)."""
    properties: dict[str, Any] = {}
    for number, question in enumerate(asked, 1):
        key = f"q{number}"
        if question.options:
            properties[key] = _choice(question)
        properties[key + OTHER] = {
            "type": "string",
            "title": "Other" if question.options else question.text or "Answer",
            "description": f"Your own answer to: {question.text}"
            if question.options
            else question.header or question.text,
        }
    return {"type": "object", "properties": properties}


def answers(asked: list[Question], content: dict[str, Any]) -> dict[str, str | list[str]]:
    """An accepted form's content as the tool's answers, by question; a question left
    blank is left out."""
    found: dict[str, str | list[str]] = {}
    for number, question in enumerate(asked, 1):
        key = f"q{number}"
        labels = {label for label, _ in question.options}
        own = content.get(key + OTHER)
        own = own.strip() if isinstance(own, str) else ""
        chosen = content.get(key)
        if question.multiple:
            picked = [c for c in chosen if c in labels] if isinstance(chosen, list) else []
            if own:
                picked.append(own)
            if picked:
                found[question.text] = picked
        elif own:
            found[question.text] = own
        elif isinstance(chosen, str) and chosen in labels:
            found[question.text] = chosen
    return found


def _message(asked: list[Question]) -> str:
    if len(asked) == 1 and asked[0].text:
        return asked[0].text
    return f"Claude has {len(asked)} questions for you" if asked else "Claude has a question"


async def ask(
    conn: Connection, session_id: str, tool_use_id: str, details: dict[str, Any]
) -> tuple[str, Reply]:
    """Ask the questions as one form; the broker's decision and reply. RpcError when
    the client could not ask (-32601: it has no forms after all)."""
    asked = questions(details)
    params = out.CreateElicitationRequest(
        session_id=session_id,
        tool_call_id=tool_use_id,
        message=_message(asked),
        requested_schema=form(asked),
    )
    result = await conn.request(ELICIT, params)
    try:
        response = _RESPONSE.validate_python(result if result is not None else {})
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "result"
        raise ParamsError(f"{ELICIT}: invalid result: {where}: {first['msg']}") from None
    if isinstance(response, acp.AcceptElicitationResponse):
        given = answers(asked, response.content or {})
        if given:
            return "allow", Reply(answers=given)
    return "deny", Reply(DECLINED_QUESTIONS)
