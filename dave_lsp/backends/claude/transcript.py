"""How an editor's transcript becomes the first message of a new conversation.

The protocol sends the whole transcript plus the prompt as one message when a session
has no live conversation: the transcript first, the prompt last, each turn labelled.
"""

from __future__ import annotations

from collections.abc import Sequence

from dave_lsp.backends.base import ChatMessage

ROLE_LABELS = {"user": "User", "assistant": "Assistant"}
PREAMBLE = "This conversation continues an earlier one. The earlier turns, oldest first:"


def first_message(transcript: Sequence[ChatMessage], prompt: str) -> str:
    """The prompt alone when there is no transcript; else every turn, labelled, then it."""
    if not transcript:
        return prompt
    turns = [f"{ROLE_LABELS.get(m.role, m.role)}: {m.content}" for m in transcript]
    return "\n\n".join([PREAMBLE, *turns, f"User: {prompt}"])
