"""Inputs the tests of every client give the scripted model: one AskUserQuestion
question and the smallest image, so the Python and Neovim tests ask the same thing."""

from __future__ import annotations

from typing import Any, Final

# Every option needs a description: the CLI refuses the tool input otherwise.
QUESTION: Final[dict[str, Any]] = {
    "question": "Which color?",
    "header": "Color",
    "multiSelect": False,
    "options": [
        {"label": "Blue", "description": "calm"},
        {"label": "Red", "description": "warm"},
    ],
}

# A 1x1 PNG.
PNG: Final[bytes] = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201a1e9d6a60000000049454e44ae426082"
)
