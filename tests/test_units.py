"""Unit tests of the pure parts: tool summaries, transcript formatting, token
coalescing, params structuring."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dave_lsp import events as ev
from dave_lsp.backends.base import ChatMessage
from dave_lsp.progress import FLUSH_CHARS, ProgressSink
from dave_lsp.protocol import ParamsError, QueryParams, structure
from dave_lsp.summaries import describe_tool_use, format_tool_summary
from dave_lsp.transcript import first_message

CWD = "/work/project"


@pytest.mark.parametrize(
    ("tool", "tool_input", "output", "structured", "expected"),
    [
        ("Read", {"file_path": "/work/project/src/a.py"}, "1\n2\n3\n", None, "src/a.py (3 lines)"),
        (
            "Read",
            {"file_path": "/work/project/a.py"},
            "x",
            {"file": {"numLines": 1}},
            "a.py (1 line)",
        ),
        (
            "Write",
            {"file_path": "/work/project/notes.txt", "content": "hello"},
            "",
            None,
            "notes.txt (5 bytes)",
        ),
        (
            "Write",
            {"file_path": "/tmp/out.txt", "content": "é"},
            "",
            None,
            "/tmp/out.txt (2 bytes)",
        ),
        ("Edit", {"file_path": "/work/project/b.py", "old_string": "a"}, "", None, "b.py"),
        ("Bash", {"command": "echo hi"}, "hi\n", None, "echo hi (3 bytes of output)"),
        (
            "Bash",
            {"command": "ls"},
            "",
            {"stdout": "a\nb\n", "stderr": ""},
            "ls (4 bytes of output)",
        ),
        ("Grep", {"pattern": "TODO"}, "", None, "'TODO'"),
        ("Glob", {"pattern": "**/*.py"}, "", None, "'**/*.py'"),
        ("WebFetch", {"url": "https://example.com"}, "", None, ""),
        ("Read", {"file_path": "/work/projectile/x"}, "", None, "/work/projectile/x (0 lines)"),
    ],
)
def test_tool_summaries(
    tool: str, tool_input: dict[str, Any], output: str, structured: Any, expected: str
) -> None:
    assert format_tool_summary(tool, tool_input, output, structured, CWD) == expected


def test_a_failed_tool_summary_names_the_target_and_the_error() -> None:
    denied = format_tool_summary(
        "Write",
        {"file_path": "/work/project/secret.txt", "content": "abcd"},
        "\nThe user said no.\nmore",
        None,
        CWD,
        is_error=True,
    )
    assert denied == "secret.txt: The user said no."
    assert format_tool_summary("Task", {}, "", None, CWD, is_error=True) == "failed"


def test_permission_messages_name_the_tool_and_its_target() -> None:
    assert describe_tool_use("Write", {"file_path": "/work/project/n.txt"}, CWD) == "Write n.txt"
    assert describe_tool_use("Bash", {"command": "rm -rf\nbuild"}, CWD) == "Bash rm -rf build"
    assert describe_tool_use("Task", {}, CWD) == "Task"


def test_first_message_is_the_prompt_alone_without_a_transcript() -> None:
    assert first_message([], "hi") == "hi"


def test_first_message_labels_every_turn_and_ends_with_the_prompt() -> None:
    message = first_message([ChatMessage("user", "one"), ChatMessage("assistant", "two")], "three")
    assert message.endswith("\n\nUser: three")
    assert message.index("User: one") < message.index("Assistant: two") < message.index("three")


async def test_tokens_are_coalesced_but_exact_and_the_first_goes_at_once() -> None:
    sent: list[dict[str, Any]] = []
    sink = ProgressSink(sent.append, "s")
    sink.begin()
    sink.emit(ev.Token("first"))
    assert sent[-1] == {"kind": "report", "type": "token", "text": "first"}
    pieces = [f"p{i} " for i in range(500)]
    for piece in pieces:
        sink.emit(ev.Token(piece))
    sink.emit(ev.Thinking("hmm"))
    sink.emit(ev.ToolUse("t1", "Read", {"file_path": "x"}))
    sink.emit(ev.Token("after"))
    await asyncio.sleep(0.05)  # the timer flushes what is left
    sink.end()
    texts = [v["text"] for v in sent if v.get("type") == "token"]
    assert "".join(texts) == "first" + "".join(pieces) + "after"
    assert len(texts) < 20
    kinds = [v.get("type") or v["kind"] for v in sent]
    # Order is kept across kinds: thinking and the tool use come between the tokens.
    assert kinds.index("thinking") < kinds.index("toolUse") < len(kinds) - 2
    assert sent[-1] == {"kind": "end"}
    assert all(len(t) <= FLUSH_CHARS + 10 for t in texts)


def test_a_sink_without_a_token_sends_nothing_and_cannot_ask() -> None:
    sink = ProgressSink(None, "s")
    sink.begin()
    sink.emit(ev.ToolUse("t1", "Read", {}))
    sink.end()
    assert not sink.can_ask


def test_params_errors_name_the_field() -> None:
    with pytest.raises(ParamsError, match=r"messages\[1\]: expected an object"):
        structure(
            "dave/query",
            {"sessionId": "a", "prompt": "p", "messages": [{"role": "user", "content": "x"}, 3]},
            QueryParams,
        )
    with pytest.raises(ParamsError, match="params must be an object"):
        structure("dave/query", [1, 2], QueryParams)
    with pytest.raises(ParamsError, match="workDoneToken: expected a string or an integer"):
        structure(
            "dave/query", {"sessionId": "a", "prompt": "p", "workDoneToken": 1.5}, QueryParams
        )


def test_env_flags_merge_over_the_options_and_a_bad_one_is_named() -> None:
    from dave_lsp.options import env_pairs

    assert env_pairs(["A=1", "B=x=y"], {"A": "0", "C": "3"}) == {"A": "1", "B": "x=y", "C": "3"}
    with pytest.raises(ValueError, match="--env takes KEY=VALUE, got 'BAD'"):
        env_pairs(["BAD"])
