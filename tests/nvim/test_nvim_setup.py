"""Setting the plugin up in a real headless Neovim (dave, dave.config, dave.commands,
dave.health, the help): bad servers and options, completion, `:checkhealth dave`, `:help dave`.
The real server, the real Claude Code CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

import re
import shutil
import socket
import sys
from pathlib import Path

import pytest

from dave_lsp.testing import FakeModelServer
from tests.harness.nvim import SERVER_CMD, Editor, editor
from tests.harness.nvim_plugin import editor_with


def test_checkhealth_reports_no_error(ed: Editor, fake_model: FakeModelServer) -> None:
    ed.command("checkhealth dave")
    report = "\n".join(ed.nvim.current.buffer[:])
    assert "OK" in report and "protocol version 1" in report, report
    assert f"the model endpoint {fake_model.url} answers (HTTP " in report, report
    assert "ERROR" not in report, report
    assert "sk-ant-fake" not in report  # keys are never printed


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({"cmd": ["/nonexistent/dave-lsp"]}, "is not an executable"),
        (
            {"cmd": [sys.executable, "-c", "import sys; sys.exit(3)"]},
            "exited (code 3) before it answered initialize; run :checkhealth dave",
        ),
        (
            {"cmd": SERVER_CMD, "init_options": {"claude": {"cliPath": 5}}},
            "refused to start: initializationOptions.claude.cliPath",
        ),
    ],
    ids=["missing", "exits", "refused"],
)
def test_a_bad_server_gives_a_clear_error(
    nvim_env: dict[str, str], opts: dict[str, object], expected: str
) -> None:
    with editor(nvim_env) as e:
        e.setup(**opts)
        e.command("Dave ask hello")
        e.wait_idle(timeout=10)
        error = e.text().rsplit("**Error:**", 1)[-1]
        assert expected in error
        assert "traceback" not in e.text().lower()
        messages = e.lua("return vim.api.nvim_exec2('messages', { output = true }).output")
        assert "traceback" not in messages.lower()
        assert not e.nvim.vvars["errmsg"]
        # It stays usable: a later ask fails the same clear way.
        e.command("Dave ask again")
        e.wait_idle(timeout=10)
        assert e.text().count(expected) == 2


def test_invalid_option_is_reported_not_raised(nvim_env: dict[str, str]) -> None:
    with editor(nvim_env) as e:
        e.setup(window={"position": "middle"})
        note = e.notes()[-1]
        assert note["level"] == 4
        assert note["msg"].startswith(
            "dave: invalid setup option: window.position: expected one of"
        )
        assert "traceback" not in note["msg"]


def test_subcommands_complete(nvim_env: dict[str, str]) -> None:
    with editor(nvim_env) as e:
        names = e.nvim.call("getcompletion", "Dave ", "cmdline")
        assert {"ask", "cancel", "new", "delete", "sessions", "rules"} <= set(names)
        assert e.nvim.call("getcompletion", "Dave de", "cmdline") == ["delete"]


def test_checkhealth_reports_a_dead_model_endpoint_as_an_error(
    nvim_env: dict[str, str], backend_env: dict[str, str], workdir: Path
) -> None:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = f"http://127.0.0.1:{port}"
    with editor_with(nvim_env, {**backend_env, "ANTHROPIC_BASE_URL": dead}, workdir) as e:
        e.command("checkhealth dave")
        report = "\n".join(e.nvim.current.buffer[:])
        assert re.search(rf"ERROR.*the model endpoint {re.escape(dead)} does not answer", report), (
            report
        )
        assert "answered initialize" in report  # the server itself is fine


def test_help_opens_from_a_plain_runtimepath_install_and_the_shipped_tags_are_current(
    nvim_env: dict[str, str], tmp_path: Path
) -> None:
    doc = Path(__file__).resolve().parents[2] / "editors" / "nvim" / "doc"
    fresh = tmp_path / "doc"
    fresh.mkdir()
    shutil.copy(doc / "dave.txt", fresh / "dave.txt")
    with editor(nvim_env) as e:  # editors/nvim on 'runtimepath', nothing else
        e.command(f"helptags {fresh}")
        assert (fresh / "tags").read_text() == (doc / "tags").read_text(), (
            "editors/nvim/doc/tags is stale: nvim --headless -c 'helptags editors/nvim/doc' -c q"
        )
        for topic in ("dave", "dave-permissions", "dave-prompt", ":Dave"):
            e.command(f"help {topic}")
            assert e.lua("return vim.bo.filetype") == "help"
            assert Path(e.lua("return vim.api.nvim_buf_get_name(0)")) == doc / "dave.txt", topic
            e.command("helpclose")
