"""permissions/modes.gate: what a permission mode lets a built-in tool use do before any
rule, for the OpenAI backend's own tools and the ACP client's file tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from dave_lsp.permissions.modes import gate


@pytest.fixture
def cwd(tmp_path: Path) -> str:
    (tmp_path / "src").mkdir()
    return str(tmp_path)


def test_bypass_lets_everything_through(cwd: str) -> None:
    assert gate("Bash", "", "bypassPermissions", cwd) == "allow"
    assert gate("Write", "/etc/passwd", "bypassPermissions", cwd) == "allow"
    assert gate("Read", None, "bypassPermissions", cwd) == "allow"


def test_reads_in_the_folder_run_in_every_mode(cwd: str) -> None:
    for mode in ("default", "acceptEdits", "plan"):
        assert gate("Read", "src/a.py", mode, cwd) == "allow"
        assert gate("Grep", "", mode, cwd) == "allow"  # "": the session's folder
        assert gate("Read", "/etc/hosts", mode, cwd) == "ask"
        assert gate("Glob", "..", mode, cwd) == "ask"


def test_guarded_reads_ask_for_files_that_run_code_later(cwd: str) -> None:
    assert gate("Read", ".envrc", "default", cwd) == "allow"
    assert gate("Read", ".envrc", "default", cwd, guarded_reads=True) == "ask"
    assert gate("Read", "src/a.py", "default", cwd, guarded_reads=True) == "allow"


def test_a_use_without_its_path_asks(cwd: str) -> None:
    assert gate("Read", None, "default", cwd) == "ask"
    assert gate("Write", None, "acceptEdits", cwd) == "ask"


def test_plan_refuses_all_but_reads(cwd: str) -> None:
    assert gate("Write", "src/a.py", "plan", cwd) == "deny"
    assert gate("Bash", "", "plan", cwd) == "deny"


def test_accept_edits_lets_edits_in_the_folder_through(cwd: str) -> None:
    assert gate("Edit", "src/a.py", "acceptEdits", cwd) == "allow"
    assert gate("Write", "/tmp/elsewhere.txt", "acceptEdits", cwd) == "ask"
    assert gate("Write", ".git/hooks/pre-commit", "acceptEdits", cwd) == "ask"
    assert gate("Bash", "", "acceptEdits", cwd) == "ask"
    assert gate("Edit", "src/a.py", "default", cwd) == "ask"
