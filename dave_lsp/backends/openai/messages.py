"""The messages of an OpenAI backend's conversation as the chat-completions API takes them:
the system prompt and the editor's transcript, the user's prompt (with its images), the
model's answer with its tool calls, and the tool results of a turn (`Trail`), every call
answered, as the API and chat templates insist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import attrs
from openai.types.chat import ChatCompletionMessageParam

from dave_lsp.backends.base import Attachment
from dave_lsp.backends.openai.stream import Call

NOT_RUN: Final = "[interrupted] The user stopped the turn before this tool ran."


@attrs.define
class Trail:
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


def message(role: str, content: str) -> ChatCompletionMessageParam:
    # The protocol's transcript has only user and assistant; anything else is sent as the
    # user's words rather than as an instruction the editor never meant to give.
    if role == "assistant":
        return {"role": "assistant", "content": content}
    if role == "system":
        return {"role": "system", "content": content}
    return {"role": "user", "content": content}


def user_message(prompt: str, attachments: Sequence[Attachment]) -> ChatCompletionMessageParam:
    """The prompt, with its images as `image_url` parts (data URLs) when it has any; a
    model that takes no images makes the endpoint answer with an error."""
    if not attachments:
        return message("user", prompt)
    parts: list[Any] = [{"type": "text", "text": prompt}]
    parts += [
        {"type": "image_url", "image_url": {"url": f"data:{a.media_type};base64,{a.data}"}}
        for a in attachments
    ]
    return {"role": "user", "content": parts}


def assistant(text: str, calls: list[Call]) -> ChatCompletionMessageParam:
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
