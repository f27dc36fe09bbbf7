"""The input schemas of Read, Write and Edit as Claude Code's own tools take them.

The OpenAI agent's built-in tools and the ACP client file tools stand in for Claude
Code's, so both take the same inputs (the permission rules, proposals and summaries read
`file_path`, `content`, `old_string`, ...): one definition serves both. Each caller
says what a path may be (absolute only, or relative to the project folder too).
"""

from __future__ import annotations

from typing import Any


def _path(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def read_schema(path: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "file_path": _path(path),
            "offset": {"type": "integer", "description": "1-based line to start at"},
            "limit": {"type": "integer", "description": "how many lines to read"},
        },
        "required": ["file_path"],
    }


def write_schema(path: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"file_path": _path(path), "content": {"type": "string"}},
        "required": ["file_path", "content"],
    }


def edit_schema(path: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "file_path": _path(path),
            "old_string": {"type": "string"},
            "new_string": {"type": "string"},
            "replace_all": {"type": "boolean", "default": False},
        },
        "required": ["file_path", "old_string", "new_string"],
    }
