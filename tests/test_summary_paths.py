"""A tool's path in its summary is the file the tools resolve it to (`paths.absolute`, as
every module that resolves a tool's path does): `~` is the user's home, so a file in the
session's folder reads relative to it however the model named it."""

from __future__ import annotations

from pathlib import Path

import pytest

from dave_lsp.tools.summaries import describe_tool_use, format_tool_summary


def test_a_home_relative_path_reads_as_the_file_it_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cwd = str(tmp_path / "project")
    write = {"file_path": "~/project/notes.txt", "content": "abc"}
    assert format_tool_summary("Write", write, "", None, cwd) == "notes.txt (3 bytes)"
    assert describe_tool_use("Write", write, cwd) == "Write notes.txt"
    # Outside the folder: as the model named it.
    assert describe_tool_use("Edit", {"file_path": "~/other.txt"}, cwd) == "Edit ~/other.txt"
    assert describe_tool_use("Edit", {"file_path": "../x.txt"}, cwd) == "Edit ../x.txt"
