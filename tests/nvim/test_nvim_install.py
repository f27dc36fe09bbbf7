"""`:Dave install` in a real headless Neovim (dave.install, and how dave.config and dave.health
find the server): a Neovim with fresh XDG folders and no dave-lsp on PATH, the plugin in a
fresh copy of the checkout (no .venv), provisions the server from that checkout with the real
Python, venv and pip (pip's own cache allowed), then the chat answers through it (the real
Claude Code CLI of the installed claude-agent-sdk, the shipped fake model). A plugin outside a
checkout gets `pip install dave-lsp` from a package index (here a folder with a wheel of the
checkout); two Neovims that install at once take turns through the install lock."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dave_lsp.testing import FakeModelServer
from tests.harness.nvim import REPO, Editor, editor, wait_until
from tests.harness.nvim_plugin import answer

# The events of :Dave install, recorded as they fire.
EVENTS = """
T.installs = {}
vim.api.nvim_create_autocmd("User", {
  pattern = { "DaveInstalled", "DaveInstallFailed" },
  callback = function(ev)
    table.insert(T.installs, { event = ev.match, data = ev.data })
  end,
})
"""

INSTALL_TIMEOUT = 600  # from scratch it took 31-46 s on the loaded 2-core test machine
INDEX_VERSION = "999.0"  # the package index's dave-lsp: above any release, so pip takes it


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the checkout as a plugin manager clones it: the package and the plugin,
    no .venv (so nothing but :Dave install provides a server), files nobody edits meanwhile."""
    root = tmp_path_factory.mktemp("checkout") / "dave-lsp"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules")
    shutil.copytree(REPO / "dave_lsp", root / "dave_lsp", ignore=skip)
    shutil.copytree(REPO / "editors" / "nvim", root / "editors" / "nvim", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, root / name)
    return root


def xdg(root: Path) -> dict[str, str]:
    """Fresh XDG folders: Neovim's config, data (where :Dave install installs), state, cache."""
    return {f"XDG_{n}_HOME": str(root / n.lower()) for n in ("CONFIG", "DATA", "STATE", "CACHE")}


def path_with(tmp: Path, pythons: dict[str, str]) -> str:
    """A PATH of a folder holding just these pythons (name -> interpreter), and the system's
    folders when the test needs them (never a dave-lsp)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, target in pythons.items():
        (bin_dir / name).symlink_to(target)
    return str(bin_dir)


@pytest.fixture(scope="module")
def install_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One Neovim data folder for the module: the first test provisions it from scratch, the
    others find it provisioned."""
    tmp = tmp_path_factory.mktemp("install")
    python = getattr(sys, "_base_executable", sys.executable)  # a real Python >= 3.11
    path = path_with(tmp, {"python3": python}) + os.pathsep + "/usr/bin:/bin"
    assert shutil.which("dave-lsp", path=path) is None
    return {
        **xdg(tmp / "xdg"),
        # Neovim's folders are fresh; pip keeps its usual cache (wheels it downloaded).
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
        "PATH": path,
    }


@pytest.fixture
def fresh(
    install_env: dict[str, str], checkout: Path, backend_env: dict[str, str], tmp_path: Path
) -> Iterator[Editor]:
    with editor(install_env, plugin=checkout / "editors" / "nvim") as e:
        e.setup(init_options={"env": backend_env, "cwd": str(tmp_path)})  # no `cmd`
        e.lua(EVENTS)
        yield e


def installs(e: Editor) -> list[dict[str, object]]:
    return e.lua("return T.installs")


def health(e: Editor) -> str:
    e.command("checkhealth dave")
    return "\n".join(e.nvim.current.buffer[:])


def test_dave_install_provisions_the_server_and_the_chat_answers_through_it(
    fresh: Editor, install_env: dict[str, str], fake_model: FakeModelServer
) -> None:
    data = Path(install_env["XDG_DATA_HOME"]) / "nvim" / "dave-lsp"
    fresh.command("Dave ask hello")
    fresh.wait_idle(timeout=10)
    assert "no server found: run :Dave install" in fresh.text()

    started = time.monotonic()
    fresh.command("Dave install")
    done = fresh.wait(lambda: installs(fresh), INSTALL_TIMEOUT, "DaveInstalled")
    seconds = time.monotonic() - started
    print(f"\n:Dave install from scratch: {seconds:.1f} s")
    assert done[0]["event"] == "DaveInstalled", done
    event = done[0]["data"]
    assert isinstance(event, dict)
    server = data / "venv" / "bin" / "dave-lsp"
    assert event["server"] == str(server) and event["fresh"] is True
    assert event["source"] == "checkout" and event["version"] == "0.1.0"
    log = data / "install.log"
    assert "Successfully installed" in log.read_text()
    notes = [n["msg"] for n in fresh.notes()]
    assert any(f"pip's output: {log}" in n for n in notes), notes
    assert any("the server is installed (dave-lsp 0.1.0" in n for n in notes), notes

    fresh.command("Dave ask hello")
    fresh.wait_text("You said: hello", timeout=60)
    fresh.wait_idle()
    assert answer(fresh) == "You said: hello"
    assert fresh.lua("return require('dave.client').cmd()") == [str(server)]

    report = health(fresh)
    assert f"server command: {server}" in report, report
    assert "installed by :Dave install on " in report and "Python for :Dave install:" in report
    assert "ERROR" not in report and "WARNING" not in report, report


def test_a_second_install_with_nothing_to_do_ends_at_once(
    fresh: Editor, install_env: dict[str, str]
) -> None:
    log = Path(install_env["XDG_DATA_HOME"]) / "nvim" / "dave-lsp" / "install.log"
    before = log.stat().st_mtime_ns
    started = time.monotonic()
    fresh.command("Dave install")
    done = fresh.wait(lambda: installs(fresh), 10, "DaveInstalled")
    assert time.monotonic() - started < 3
    assert done[0]["event"] == "DaveInstalled"
    assert done[0]["data"]["fresh"] is False  # type: ignore[index]
    assert log.stat().st_mtime_ns == before  # no pip ran
    assert "installed and up to date" in fresh.notes()[-1]["msg"]
    assert not fresh.processes()  # nothing started: no python, no pip


def old_python() -> str:
    """A real Python older than 3.11 when the machine has one, else a stand-in that says so."""
    found = [shutil.which(f"python3.{minor}") for minor in (10, 9, 8)]
    found += sorted(glob.glob("/root/.pyenv/versions/3.1[0]*/bin/python3.10"))
    for exe in filter(None, found):
        probe = [exe, "-c", "import sys; print(sys.version_info[:2] < (3, 11))"]
        if subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "True":
            return exe
    return "/bin/false"


def test_no_python_of_at_least_3_11_fires_install_failed_with_the_reason(
    checkout: Path, tmp_path: Path, backend_env: dict[str, str]
) -> None:
    env = {
        **xdg(tmp_path / "xdg"),
        "PATH": path_with(tmp_path, {"python3": old_python()}),
    }
    with editor(env, plugin=checkout / "editors" / "nvim") as e:
        e.setup(init_options={"env": backend_env, "cwd": str(tmp_path)})
        e.lua(EVENTS)
        e.command("Dave install")
        done = e.wait(lambda: installs(e), 30, "DaveInstallFailed")
        assert done[0]["event"] == "DaveInstallFailed", done
        reason = done[0]["data"]["reason"]  # type: ignore[index]
        assert reason.startswith("no Python 3.11 or newer with the venv module (tried python3 (")
        assert reason.endswith("install one, or set vim.g.dave_python to its path")
        assert "\n" not in reason
        assert not (tmp_path / "xdg" / "data" / "nvim" / "dave-lsp" / "venv").exists()
        report = health(e)
        assert re.search(rf"ERROR.*:Dave install cannot run: {re.escape(reason)}", report), report

        e.lua("vim.g.dave_python = '/nowhere/python3'; T.installs = {}")
        e.command("Dave install")
        done = e.wait(lambda: installs(e), 30, "DaveInstallFailed")
        assert "(tried vim.g.dave_python = /nowhere/python3 (not an executable))" in str(
            done[0]["data"]
        )


def test_the_installed_server_comes_after_path_and_before_the_checkouts_own_venv(
    install_env: dict[str, str], checkout: Path, tmp_path: Path
) -> None:
    venv_bin = checkout / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "dave-lsp").symlink_to(sys.executable)  # an executable is all it checks
    on_path = tmp_path / "onpath"
    on_path.mkdir()
    (on_path / "dave-lsp").symlink_to(sys.executable)  # an executable is all it checks
    found = "return { require('dave.config').server_cmd() }"
    plugin = checkout / "editors" / "nvim"
    try:
        with editor(install_env, plugin=plugin) as e:  # the one :Dave install installed
            cmd, how = e.lua(
                "local c, _, how = require('dave.config').server_cmd() return {c, how}"
            )
            assert cmd == [
                str(Path(install_env["XDG_DATA_HOME"]) / "nvim/dave-lsp/venv/bin/dave-lsp")
            ]
            assert how.startswith("installed by :Dave install on ")
            e.lua(f"vim.env.PATH = '{on_path}:' .. vim.env.PATH")
            assert e.lua(found)[0] == ["dave-lsp"]
        fresh_data = {**install_env, "XDG_DATA_HOME": str(tmp_path / "data")}
        with editor(fresh_data, plugin=plugin) as e:  # nothing installed: the checkout's .venv
            assert e.lua(found)[0] == [str(venv_bin / "dave-lsp")]
    finally:
        shutil.rmtree(checkout / ".venv")


def test_pip_failing_offline_fires_install_failed_with_pips_error_and_installs_nothing(
    checkout: Path, tmp_path: Path, backend_env: dict[str, str]
) -> None:
    empty = tmp_path / "wheels"
    empty.mkdir()
    python = getattr(sys, "_base_executable", sys.executable)
    env = {
        **xdg(tmp_path / "xdg"),
        "PATH": path_with(tmp_path, {"python3": python}),
        # No package index and no wheels: what pip meets without a network.
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(empty),
    }
    log = tmp_path / "xdg" / "data" / "nvim" / "dave-lsp" / "install.log"
    with editor(env, plugin=checkout / "editors" / "nvim") as e:
        e.setup(init_options={"env": backend_env, "cwd": str(tmp_path)})
        e.lua(EVENTS)
        e.command("Dave install")
        done = e.wait(lambda: installs(e), 120, "DaveInstallFailed")
        assert done[0]["event"] == "DaveInstallFailed", done
        reason = done[0]["data"]["reason"]  # type: ignore[index]
        assert reason.startswith("pip install ") and "failed (exit 1): ERROR: " in reason
        assert "No matching distribution found for setuptools" in reason, reason
        assert reason.endswith(f"; see {log}") and "\n" not in reason
        assert "No matching distribution" in log.read_text()
        assert not (log.parent / "installed.json").exists()
        e.command("Dave ask hello")
        e.wait_idle(timeout=10)
        assert "no server found: run :Dave install" in e.text()


def lock_notices(e: Editor) -> list[str]:
    return [n["msg"] for n in e.notes() if "an install is already running" in n["msg"]]


def test_install_waits_while_a_live_process_holds_the_lock_and_takes_over_a_dead_ones(
    checkout: Path, tmp_path: Path, backend_env: dict[str, str]
) -> None:
    # No Python 3.11+: once it has the lock, the install fails at once (no venv, no pip).
    env = {**xdg(tmp_path / "xdg"), "PATH": path_with(tmp_path, {"python3": old_python()})}
    lock = tmp_path / "xdg" / "data" / "nvim" / "dave-lsp" / "install.lock"
    lock.mkdir(parents=True)
    holder = subprocess.Popen(["sleep", "300"])  # another Neovim's install, as its lock says
    try:
        (lock / "pid").write_text(str(holder.pid))
        with editor(env, plugin=checkout / "editors" / "nvim") as e:
            e.setup(init_options={"env": backend_env, "cwd": str(tmp_path)})
            e.lua(EVENTS)
            e.command("Dave install")
            notices = e.wait(lambda: lock_notices(e), 10, "the notice that it waits")
            assert notices == [
                f"dave: an install is already running (pid {holder.pid}, another Neovim); "
                "this one goes on once it ends"
            ]
            time.sleep(1.5)  # three looks at the lock
            assert installs(e) == [] and e.lua("return require('dave.install').running()")
            assert (lock / "pid").read_text() == str(holder.pid)
            assert not e.processes()  # nothing started while it waits: no Python probed

            holder.kill()  # gone without releasing it: the lock is stale
            holder.wait()
            done = e.wait(lambda: installs(e), 30, "DaveInstallFailed")
            assert done[0]["event"] == "DaveInstallFailed", done
            assert done[0]["data"]["reason"].startswith("no Python 3.11")  # type: ignore[index]
            assert not lock.exists()  # taken over, then released
            assert len(lock_notices(e)) == 1
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture(scope="module")
def package_index(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one wheel, dave-lsp INDEX_VERSION built from the checkout: the package
    index that `pip install dave-lsp` finds it in (PIP_FIND_LINKS)."""
    root = tmp_path_factory.mktemp("index")
    src = root / "src"
    shutil.copytree(checkout / "dave_lsp", src / "dave_lsp")
    shutil.copy(checkout / "README.md", src / "README.md")
    pyproject = (checkout / "pyproject.toml").read_text()
    released = pyproject.replace('\nversion = "0.1.0"\n', f'\nversion = "{INDEX_VERSION}"\n', 1)
    assert released != pyproject
    (src / "pyproject.toml").write_text(released)
    build = "import sys; from setuptools import build_meta as b; b.build_wheel(sys.argv[1])"
    wheels = root / "wheels"
    subprocess.run(
        [sys.executable, "-c", build, str(wheels)], cwd=src, check=True, capture_output=True
    )
    assert [w.name for w in wheels.iterdir()] == [f"dave_lsp-{INDEX_VERSION}-py3-none-any.whl"]
    return wheels


def test_outside_a_checkout_two_neovims_install_dave_lsp_from_the_index_once(
    install_env: dict[str, str],
    package_index: Path,
    tmp_path: Path,
    backend_env: dict[str, str],
    fake_model: FakeModelServer,
) -> None:
    # A plugin manager's copy of the plugin alone: no dave-lsp pyproject.toml above it.
    plugin = tmp_path / "plugins" / "dave.nvim"
    shutil.copytree(REPO / "editors" / "nvim", plugin, ignore=shutil.ignore_patterns("*.pyc"))
    links = [str(package_index), *filter(None, [os.environ.get("PIP_FIND_LINKS")])]
    env = {**install_env, "PIP_FIND_LINKS": " ".join(links)}
    data = Path(install_env["XDG_DATA_HOME"]) / "nvim" / "dave-lsp"
    with editor(env, plugin=plugin) as a, editor(env, plugin=plugin) as b:
        for e in (a, b):
            e.setup(init_options={"env": backend_env, "cwd": str(tmp_path)})
            e.lua(EVENTS)
        a.command("Dave install")
        wait_until(lambda: (data / "install.lock" / "pid").exists(), 10, "a's install lock")
        b.command("Dave install")
        assert b.wait(lambda: lock_notices(b), 10, "b's notice that it waits") == [
            f"dave: an install is already running (pid {a.pid}, another Neovim); "
            "this one goes on once it ends"
        ]

        started = time.monotonic()
        done = a.wait(lambda: installs(a), INSTALL_TIMEOUT, "a's DaveInstalled")
        print(
            f"\n:Dave install of dave-lsp from a package index: {time.monotonic() - started:.1f} s"
        )
        assert done[0]["event"] == "DaveInstalled", done
        event = done[0]["data"]
        assert isinstance(event, dict) and event["fresh"] is True
        assert event["source"] == "index" and event["version"] == INDEX_VERSION
        log = (data / "install.log").read_text()
        assert "Successfully installed" in log and f"dave-lsp-{INDEX_VERSION}" in log
        stamp = json.loads((data / "installed.json").read_text())
        assert stamp["version"] == INDEX_VERSION and stamp["source"] == "index"

        # b waited, then found it installed: no pip of its own, the log is a's.
        done = b.wait(lambda: installs(b), 30, "b's DaveInstalled")
        assert done[0]["event"] == "DaveInstalled", done
        assert done[0]["data"]["fresh"] is False  # type: ignore[index]
        assert done[0]["data"]["version"] == INDEX_VERSION  # type: ignore[index]
        assert b.notes()[-1]["msg"].startswith(
            f"dave: dave-lsp {INDEX_VERSION} is installed from the package index: "
        )
        assert (data / "install.log").read_text() == log
        assert log.count(" -m pip install ") == 1
        assert not (data / "install.lock").exists()

        b.command("Dave ask hello")
        b.wait_text("You said: hello", timeout=60)
        b.wait_idle()
        assert b.lua("return require('dave.client').cmd()") == [str(data / "venv/bin/dave-lsp")]
        assert f"dave-lsp {INDEX_VERSION}, Python" in health(b)
