"""`dave-lsp chat`, the headless client, as a user runs it: the demo with each backend,
answers on stdout, tool lines and errors on stderr, and the exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def chat(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dave_lsp", "chat", "--demo", "--cwd", str(cwd), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("backend", ["claude", "openai"])
def test_the_demo_answers_on_stdout(backend: str, tmp_path: Path) -> None:
    done = chat("--backend", backend, "hello", "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "You said: hello demo\n"
    assert "scripted offline model, not a real model" in done.stderr


def test_prompts_from_stdin_share_one_session_and_tools_need_yes(tmp_path: Path) -> None:
    done = chat("--yes", cwd=tmp_path, stdin="remember pear-2\nwrite pear.txt ripe\nrecall\n")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pear.txt").read_text() == "ripe"
    assert "✓ Write pear.txt (4 bytes)" in done.stderr
    assert done.stdout.splitlines()[-1] == "Seen: remember pear-2 | write pear.txt ripe"


def test_without_yes_a_piped_chat_denies_tools(tmp_path: Path) -> None:
    done = chat("write nope.txt x", cwd=tmp_path)
    assert not (tmp_path / "nope.txt").exists()
    assert "denied (not interactive; pass --yes to allow)" in done.stderr
    assert "rerun with --yes" in done.stdout  # the model saw the reason


def test_a_failed_query_exits_non_zero_with_one_line(tmp_path: Path) -> None:
    done = chat("error 500 the fake is down", cwd=tmp_path)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the fake is down" in errors[0]


def test_the_openai_backend_says_it_cannot_run_tools(tmp_path: Path) -> None:
    done = chat("--backend", "openai", "write x.txt y", cwd=tmp_path)
    assert done.returncode == 1
    assert "does not support tool calling" in done.stderr


def test_a_missing_server_is_a_clear_error(tmp_path: Path) -> None:
    done = chat("--server", "/nonexistent/dave-lsp", "hi", cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot start the server '/nonexistent/dave-lsp'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_proposed_change_is_shown_as_a_diff_before_it_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "greet.txt").write_text("hello\n")
    done = chat("--yes", "write greet.txt hello world", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    diff = "--- greet.txt\n+++ greet.txt\n@@ -1 +1 @@\n-hello\n+hello world\n"
    assert diff in done.stderr
    assert "\x1b[" not in done.stderr  # plain when stderr is not a terminal
    assert done.stderr.index(diff) < done.stderr.index("allowed (--yes)")
    assert (tmp_path / "greet.txt").read_text() == "hello world"
