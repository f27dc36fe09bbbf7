"""`dave-lsp chat`, the headless client, as a user runs it: the demo with each backend,
answers on stdout, tool lines and errors on stderr, and the exit code."""

from __future__ import annotations

import json
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


def test_the_openai_backend_runs_tools_under_the_same_permissions(tmp_path: Path) -> None:
    done = chat("--backend", "openai", "write x.txt y", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "denied (not interactive; pass --yes to allow)" in done.stderr
    assert not (tmp_path / "x.txt").exists()
    done = chat("--backend", "openai", "--yes", "write x.txt y", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x.txt").read_text() == "y"


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


def chat_on_a_terminal(*args: str, cwd: Path, typed: str) -> subprocess.CompletedProcess[str]:
    """`chat` with a terminal for stdin (so it asks), `typed` already waiting there."""
    import os
    import pty

    main, secondary = pty.openpty()
    os.write(main, typed.encode())
    try:
        return subprocess.run(
            [sys.executable, "-m", "dave_lsp", "chat", "--demo", "--cwd", str(cwd), *args],
            stdin=secondary,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(main)
        os.close(secondary)


def test_the_models_question_is_asked_and_answered_on_the_terminal(tmp_path: Path) -> None:
    question = {
        "question": "Which color?",
        "header": "Color",
        "multiSelect": False,
        "options": [{"label": "Blue", "description": "calm"}, {"label": "Red", "description": ""}],
    }
    ask = "tool AskUserQuestion " + json.dumps({"questions": [question]})
    done = chat_on_a_terminal(ask, cwd=tmp_path, typed="2\n")
    assert done.returncode == 0, done.stderr
    assert "[Color] Which color?\n    1. Blue - calm\n    2. Red\n" in done.stderr
    assert '"Which color?"="Red"' in done.stdout


def test_a_plan_is_shown_and_approved_with_accept_edits(tmp_path: Path) -> None:
    done = chat_on_a_terminal(
        "--permission-mode", "plan", "plan # Chores | - tidy", cwd=tmp_path, typed="e\n"
    )
    assert done.returncode == 0, done.stderr
    assert "The model's plan:\n    # Chores\n    - tidy\n" in done.stderr
    assert "approve? [y]es / [e]dits too (acceptEdits)" in done.stderr


def test_an_image_goes_with_the_prompt(tmp_path: Path) -> None:
    png = tmp_path / "dot.png"
    png.write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
            "0000000d4944415478da63f8cfc0f01f0005000201a1e9d6a60000000049454e44ae426082"
        )
    )
    done = chat("--image", str(png), "images", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Images: image/png (")
    bad = chat("--image", str(tmp_path / "notes.txt"), "images", cwd=tmp_path)
    assert bad.returncode == 1
    assert "--image " in bad.stderr and "not a png, jpeg, gif or webp file" in bad.stderr
