"""Fixtures of the Neovim plugin's tests: a Neovim with the plugin set up against the real
server (`ed`), its work folder and state folders, and the options tests parametrize."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.nvim import SERVER_CMD, Editor, editor


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
def nvim_env(tmp_path: Path) -> dict[str, str]:
    """Keeps nvim's and the server's state files out of the real home."""
    return {
        f"XDG_{name}_HOME": str(tmp_path / "xdg" / name.lower())
        for name in ("CONFIG", "DATA", "STATE", "CACHE")
    }


@pytest.fixture
def review_diff() -> bool:
    """Whether file proposals open a diff tab (the default). Tests of the plain permission
    prompt with Write parametrize it to False (PLAIN_PROMPT)."""
    return True


@pytest.fixture
def active_file() -> bool:
    """Whether a prompt carries the active file as `context` (the default). Tests of the
    plugin with it off (a range's lines pasted into the prompt) parametrize it to False."""
    return True


@pytest.fixture
def ed(
    nvim_env: dict[str, str],
    backend_env: dict[str, str],
    workdir: Path,
    review_diff: bool,
    active_file: bool,
) -> Iterator[Editor]:
    with editor(nvim_env) as e:
        e.setup(
            cmd=SERVER_CMD,
            init_options={"env": backend_env, "cwd": str(workdir)},
            review={"diff": review_diff},
            context={"active_file": active_file},
        )
        yield e


@pytest.fixture
def project(workdir: Path) -> dict[str, Path]:
    a = workdir / "greeting.py"
    a.write_text('def greet(name):\n    return "hi " + name\n\n\ngreet("x")\n')
    b = workdir / "use.py"
    b.write_text('from greeting import greet\n\nprint(greet("y"))\n')
    return {"a": a, "b": b}
