"""Checkpoints (issue 27): every file a turn changes is recorded, Bash's changes too,
through the real server, the real CLI (and the OpenAI backend) and the fake model: listed
in the query's result and dave/changes, reverted under the review's rules (a file the
user changed since is a conflict, kept), after a restart; a folder over the bound says so
once; the user's own .git is never touched; without git on PATH, the same by a walk.
Then the shadow repository and the walk against hostile folders and a hostile
environment, in process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dave_lsp import events as ev
from dave_lsp.config import parse_options
from dave_lsp.review.changes import KEEP_BYTES
from dave_lsp.review.checkpoints import (
    Checkpoint,
    CheckpointOptions,
    Checkpoints,
    TurnCheckpoint,
)
from dave_lsp.rpc import ParamsError
from dave_lsp.testing import FakeModelServer
from tests.conftest import Server
from tests.harness.lsp import DaveClient, config, initialize, new_session
from tests.test_openai_agent import openai_options

BASH = "sed -i s/dave/bash/ a.txt && echo made > b.txt && rm -f seed.txt"


def bash(command: str) -> str:
    return "tool Bash " + json.dumps({"command": command, "description": "change files"})


async def allowed(client: DaveClient, session: str, prompt: str) -> tuple[dict[str, Any], str]:
    """A query whose permission requests are all allowed: (result, token)."""
    future, token = client.start_query(session, prompt)
    answered = 0
    while not future.done():
        requests = client.of_type(token, "permissionRequest")
        for request in requests[answered:]:
            await client.request(
                "dave/permission", {"requestId": request["requestId"], "decision": "allow"}
            )
        answered = len(requests)
        await asyncio.wait([future], timeout=0.05)
    return await asyncio.wait_for(future, 60), token


def seed(folder: Path) -> None:
    (folder / "a.txt").write_text("dave was here\n")
    (folder / "seed.txt").write_text("seed\n")


def git_state(folder: Path) -> dict[str, str]:
    """Every file of the user's .git, by path, as a hash of its bytes."""
    found = {}
    for path in sorted((folder / ".git").rglob("*")):
        if path.is_file():
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def user_repo(folder: Path) -> None:
    def git(*args: str) -> None:
        env = {"PATH": os.environ["PATH"], "HOME": str(folder), "GIT_CONFIG_NOSYSTEM": "1"}
        subprocess.run(["git", *args], cwd=folder, env=env, check=True, capture_output=True)

    git("init", "-q")
    (folder / ".gitignore").write_text("state/\n")
    git("add", "a.txt", "seed.txt", ".gitignore")
    git("-c", "user.name=U", "-c", "user.email=u@example.com", "commit", "-qm", "seed")


EXPECTED = [("a.txt", "modified", 1, 1), ("b.txt", "created", 1, 0), ("seed.txt", "deleted", 0, 1)]


def listed(changes: list[dict[str, Any]], folder: Path) -> list[tuple[str, str, int, int]]:
    return sorted(
        (os.path.relpath(c["path"], folder), c["status"], c["added"], c["removed"]) for c in changes
    )


async def bash_turn(client: DaveClient, session: str, folder: Path) -> dict[str, Any]:
    """Run BASH as the session's second turn; check it is listed and reviewed. Its
    result."""
    await client.query(session, "hello")
    result, _ = await allowed(client, session, bash(BASH))
    assert (folder / "b.txt").read_text() == "made\n"
    assert listed(result["changes"], folder) == EXPECTED
    review = await client.request("dave/changes", {"sessionId": session, "turn": 2})
    files = {Path(f["path"]).name: f for f in review["files"]}
    assert (files["a.txt"]["before"], files["a.txt"]["after"]) == (
        "dave was here\n",
        "bash was here\n",
    )
    assert files["seed.txt"]["before"] == "seed\n" and files["seed.txt"]["after"] is None
    assert "-dave was here\n+bash was here\n" in files["a.txt"]["diff"]
    return result


def check_reverted_but_mine(undone: dict[str, Any], folder: Path) -> None:
    """The revert of the BASH turn after the user changed b.txt: b.txt is a conflict."""
    assert sorted(undone["reverted"]) == [str(folder / "a.txt"), str(folder / "seed.txt")]
    [conflict] = undone["conflicts"]
    assert conflict["path"] == str(folder / "b.txt")
    assert "b.txt has changed since turn 2" in conflict["message"]
    assert (folder / "a.txt").read_text() == "dave was here\n"
    assert (folder / "seed.txt").read_text() == "seed\n"
    assert (folder / "b.txt").read_text() == "made, then mine\n"


async def test_a_bash_turn_is_listed_and_reverted_and_the_users_git_is_untouched(
    server: Server, tmp_path: Path
) -> None:
    seed(tmp_path)
    user_repo(tmp_path)
    before_git = git_state(tmp_path)
    session = new_session()
    async with server() as client:
        await bash_turn(client, session, tmp_path)
    assert git_state(tmp_path) == before_git, "the user's .git was changed"
    # The user changes the created file; then, in a new server, the turn is reverted.
    (tmp_path / "b.txt").write_text("made, then mine\n")
    async with server() as client:
        undone = await client.request("dave/revertChanges", {"sessionId": session, "turn": 2})
    check_reverted_but_mine(undone, tmp_path)
    assert git_state(tmp_path) == before_git, "the user's .git was changed"


async def test_the_openai_backend_records_bash_too(
    server: Server, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    seed(tmp_path)
    session = new_session()
    env_key = {"env": {"OPENAI_API_KEY": "sk-fake-for-tests"}}
    async with server(**openai_options(fake_model), **env_key) as client:
        result, _ = await allowed(client, session, bash(BASH))
        assert listed(result["changes"], tmp_path) == EXPECTED
        undone = await client.request("dave/revertChanges", {"sessionId": session})
    assert len(undone["reverted"]) == 3 and undone["conflicts"] == []
    assert (tmp_path / "a.txt").read_text() == "dave was here\n"
    assert (tmp_path / "seed.txt").read_text() == "seed\n"
    assert not (tmp_path / "b.txt").exists()


async def test_a_folder_over_the_bound_says_so_once_and_keeps_file_tool_tracking(
    server: Server, tmp_path: Path
) -> None:
    seed(tmp_path)
    for i in range(6):
        (tmp_path / f"many{i}.txt").write_text(f"{i}\n")
    session = new_session()
    async with server(checkpoints={"maxFiles": 5}, permissionMode="acceptEdits") as client:
        result, token = await allowed(client, session, bash(BASH))
        notices = [r["message"] for r in client.of_type(token, "status") if r.get("message")]
        [notice] = [n for n in notices if "checkpoints are off" in n]
        assert f"checkpoints are off for {tmp_path}: over 5 files" in notice
        assert "maxFiles" in notice and "Bash are not recorded" in notice
        assert result["changes"] == []  # Bash's changes are not seen ...
        result, token = await client.query(session, "write w.txt by a file tool")
        assert listed(result["changes"], tmp_path) == [("w.txt", "created", 1, 0)]  # ... these are
        notices = [r.get("message") or "" for r in client.of_type(token, "status")]
        assert not [n for n in notices if "checkpoints are off" in n]  # said once


# -- the shadow repository, in process ---------------------------------------------------


async def changes_of(folder: Path, command: str, **options: Any) -> list[tuple[str, str]]:
    checkpoints = Checkpoints(folder / "state" / "checkpoints", CheckpointOptions(**options))
    checkpoint = await checkpoints.take([str(folder)])
    await asyncio.to_thread(subprocess.run, command, shell=True, cwd=folder, check=True)
    found = await checkpoints.changes(checkpoint)
    return sorted((str(Path(c.path).relative_to(folder)), c.status) for c in found)


async def test_hostile_folders_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    # Attributes that would rewrite the bytes kept, or run a filter a config named.
    (folder / ".gitattributes").write_text("* text eol=lf filter=evil ident\n")
    (folder / "link.txt").symlink_to(outside)
    (folder / "ignored.log").write_text("x\n")
    (folder / ".gitignore").write_text("*.log\n")
    nested = folder / "nested"
    nested.mkdir()
    # A repository without a commit (git add fails on it unless told to go on).
    await asyncio.to_thread(subprocess.run, ["git", "init", "-q"], cwd=nested, check=True)
    # The user's shell points git elsewhere: none of it may be used.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "elsewhere-index"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.fsmonitor'='touch /tmp/pwned'")
    command = (
        "printf 'one\\r\\nTWO\\r\\n' > crlf.txt && echo through >> link.txt && "
        "echo y >> ignored.log && echo n > nested/n.txt && echo new > new.txt && "
        "touch \"$(printf 'not-utf8-\\377')\""
    )
    assert await changes_of(folder, command) == [("crlf.txt", "modified"), ("new.txt", "created")]
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "elsewhere-index").exists()
    checkpoints = Checkpoints(folder / "state" / "checkpoints")
    checkpoint = await checkpoints.take([str(folder)])
    (folder / "crlf.txt").write_bytes(b"changed\r\n")
    [change] = await checkpoints.changes(checkpoint)
    assert change.before is not None and change.before.data == b"one\r\nTWO\r\n"


async def test_a_checkpoint_that_takes_too_long_is_given_up_and_said_once(
    tmp_path: Path,
) -> None:
    for i in range(300):
        (tmp_path / f"f{i}.txt").write_text("x" * 1000)
    checkpoints = Checkpoints(
        tmp_path / "state" / "checkpoints", CheckpointOptions(timeout_seconds=0.001)
    )
    first = await checkpoints.take([str(tmp_path)])
    assert first.trees == {}
    [notice] = first.notices
    assert "took over 0.01 s (ten times" in notice and "timeoutSeconds" in notice
    again = await checkpoints.take([str(tmp_path)])
    assert again.trees == {} and again.notices == ()


async def test_tools_wait_for_a_late_checkpoint_at_most_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    checkpoints = Checkpoints(
        tmp_path / "state" / "checkpoints", CheckpointOptions(timeout_seconds=0.3)
    )
    take = checkpoints._take
    release = threading.Event()

    def slow(folders: list[str]) -> Checkpoint:
        release.wait(10)  # a first checkpoint of a big folder
        return take(folders)

    monkeypatch.setattr(checkpoints, "_take", slow)
    said: list[ev.Event] = []
    turn = TurnCheckpoint(checkpoints, [str(tmp_path)], said.append)
    started = time.monotonic()
    await turn.before("Read")  # reads wait for nothing, and start nothing
    await turn.before("mcp__editor__getDiagnostics")  # nor do the editor's tools
    assert time.monotonic() - started < 0.25
    await turn.before("Bash")  # a tool that may change files is about to run
    assert 0.25 < time.monotonic() - started < 3
    [status] = said
    assert isinstance(status, ev.Status) and "not ready after 0.3 s" in (status.message or "")
    (tmp_path / "a.txt").write_text("changed by Bash\n")
    release.set()
    assert await turn.changes(["Bash"]) == []  # not recorded, rather than half recorded
    # The checkpoint was made all the same: the next turn's is ready at once.
    turn = TurnCheckpoint(checkpoints, [str(tmp_path)], said.append)
    await turn.before("Bash")
    (tmp_path / "b.txt").write_text("b\n")
    assert [c.status for c in await turn.changes(["Bash"])] == ["created"]
    assert len(said) == 1


async def test_every_session_folder_is_checkpointed_once(tmp_path: Path) -> None:
    cwd, extra = tmp_path / "cwd", tmp_path / "extra"
    (cwd / "sub").mkdir(parents=True)
    extra.mkdir()
    (extra / "e.txt").write_text("e\n")
    checkpoints = Checkpoints(cwd / "state" / "checkpoints")
    # The cwd's own subfolder is no folder of its own: its files are the cwd's.
    checkpoint = await checkpoints.take([str(cwd), str(extra), str(cwd / "sub")])
    assert sorted(checkpoint.trees) == [str(cwd), str(extra)]
    (extra / "e.txt").unlink()
    (cwd / "sub" / "s.txt").write_text("s\n")
    found = await checkpoints.changes(checkpoint)
    assert sorted((c.path, c.status) for c in found) == [
        (str(cwd / "sub" / "s.txt"), "created"),
        (str(extra / "e.txt"), "deleted"),
    ]
    # The state folder inside the cwd (the shadow repositories themselves) is never listed.
    assert not [c for c in found if "state" in Path(c.path).parts]


def without_git(bin_dir: Path) -> str:
    """A PATH with every command of this one but git's: what a machine without git has."""
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                if not name.startswith("git") and not (bin_dir / name).exists():
                    (bin_dir / name).symlink_to(os.path.join(folder, name))
    return str(bin_dir)


@asynccontextmanager
async def no_git_server(
    env: dict[str, str], path: str, folder: Path, **options: Any
) -> AsyncIterator[DaveClient]:
    client = await config({**os.environ, "PATH": path}).start()
    assert isinstance(client, DaveClient)
    base = {"env": env, "cwd": str(folder), "stateDir": str(folder / "state"), "prewarm": 0}
    await initialize(client, {**base, **options})
    try:
        yield client
    finally:
        await client.shutdown_session()


async def test_without_git_a_bash_turn_is_listed_and_reverted_by_a_walk(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    path = without_git(tmp_path / "bin")
    folder = tmp_path / "project"
    folder.mkdir()
    seed(folder)
    session = new_session()
    async with no_git_server(backend_env, path, folder) as client:
        await bash_turn(client, session, folder)
        notices = [
            r.get("message") or "" for t in client.reports for r in client.of_type(t, "status")
        ]
        assert not [n for n in notices if "checkpoints" in n]
        # No shadow git repository was made: the folder was walked.
        assert [p.suffix for p in (folder / "state" / "checkpoints").iterdir()] == [".walk"]
        (folder / "b.txt").write_text("made, then mine\n")
        undone = await client.request("dave/revertChanges", {"sessionId": session, "turn": 2})
    check_reverted_but_mine(undone, folder)


def walked(folder: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Checkpoints:
    """Checkpoints made where git is not on PATH (the commands of the test still are)."""
    with monkeypatch.context() as patched:
        patched.setenv("PATH", str(folder / "no-git-here"))
        return Checkpoints(folder / "state" / "checkpoints", CheckpointOptions(**options))


async def test_without_git_the_walk_keeps_the_bound_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(6):
        (tmp_path / f"many{i}.txt").write_text(f"{i}\n")
    checkpoints = walked(tmp_path, monkeypatch, max_files=5)
    said: list[ev.Event] = []
    turn = TurnCheckpoint(checkpoints, [str(tmp_path)], said.append)
    await turn.before("Bash")
    (tmp_path / "many0.txt").write_text("changed\n")
    assert await turn.changes(["Bash"]) == []
    [status] = said
    assert isinstance(status, ev.Status)
    assert f"checkpoints are off for {tmp_path}: over 5 files" in (status.message or "")
    await TurnCheckpoint(checkpoints, [str(tmp_path)], said.append).before("Bash")
    assert len(said) == 1
    # Under the bound (the state folder and skipped folders not counted), it records.
    (tmp_path / "many5.txt").unlink()
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "m.js").write_text("m\n")
    checkpoints = walked(tmp_path, monkeypatch, max_files=5)
    checkpoint = await checkpoints.take([str(tmp_path)])
    (tmp_path / "many1.txt").write_text("changed\n")
    assert [c.status for c in await checkpoints.changes(checkpoint)] == ["modified"]


async def test_without_git_the_walk_follows_the_same_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    folder = tmp_path / "project"
    (folder / "nested" / ".git").mkdir(parents=True)
    (folder / "build").mkdir()
    (folder / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    (folder / "link.txt").symlink_to(outside)
    (folder / "ignored.log").write_text("x\n")
    (folder / "kept.log").write_text("x\n")
    (folder / ".gitignore").write_text("# logs\n*.log\n!kept.log\n/build/\n")
    (folder / "sub").mkdir()
    (folder / "sub" / ".gitignore").write_text("*.tmp\n!again.log\n")  # deeper: first
    (folder / "big.bin").write_bytes(b"\0" * (KEEP_BYTES + 1))
    (folder / "same-size.txt").write_text("dave\n")
    checkpoints = walked(folder, monkeypatch)
    checkpoint = await checkpoints.take([str(folder)])
    command = (
        "printf 'one\\r\\nTWO\\r\\n' > crlf.txt && echo through >> link.txt && "
        "echo y >> ignored.log && echo y >> kept.log && echo n > nested/n.txt && "
        "echo b > build/b.txt && echo new > new.txt && mkfifo fifo && "
        "echo more >> big.bin && echo bash > same-size.txt && echo t > sub/t.tmp && "
        "echo t > t.tmp && echo a > sub/again.log && echo i > sub/ignored.log && "
        "touch \"$(printf 'not-utf8-\\377')\""
    )
    await asyncio.to_thread(subprocess.run, command, shell=True, cwd=folder, check=True)
    found = {
        str(Path(c.path).relative_to(folder)): c for c in await checkpoints.changes(checkpoint)
    }
    assert sorted((path, c.status) for path, c in found.items()) == [
        ("big.bin", "modified"),
        ("crlf.txt", "modified"),
        ("kept.log", "modified"),
        ("new.txt", "created"),
        ("same-size.txt", "modified"),  # same size, same mtime tick: read again all the same
        ("sub/again.log", "created"),
        ("t.tmp", "created"),
    ]
    before = found["crlf.txt"].before
    assert before is not None and before.data == b"one\r\ntwo\r\n"  # the bytes, as they were
    assert not found["big.bin"].kept  # over 1 MiB: listed by its hash, not revertable
    assert found["same-size.txt"].texts() == ("dave\n", "bash\n")
    assert outside.read_text() == "outside\nthrough\n"


async def test_without_git_a_new_server_finds_the_kept_bytes_past_a_torn_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    checkpoints = walked(tmp_path, monkeypatch)
    await checkpoints.take([str(tmp_path)])
    [store] = (tmp_path / "state" / "checkpoints").iterdir()
    pack = store / "pack"
    whole = pack.stat().st_size
    with pack.open("ab") as handle:
        handle.write(b"\x01" * 40)  # a record the killed server had begun
    (tmp_path / "b.txt").write_text("b\n")
    checkpoints = walked(tmp_path, monkeypatch)  # the next server
    checkpoint = await checkpoints.take([str(tmp_path)])
    (tmp_path / "a.txt").write_text("changed\n")
    (tmp_path / "b.txt").write_text("changed\n")
    found = {Path(c.path).name: c.before for c in await checkpoints.changes(checkpoint)}
    assert {name: side and side.data for name, side in found.items()} == {
        "a.txt": b"a\n",  # kept by the first server, not written again
        "b.txt": b"b\n",  # appended after the torn tail was cut off
    }
    # The pack: a.txt once, the torn tail gone, then b.txt and "changed\n" (once for both
    # files), each after a header of 40 bytes.
    assert pack.stat().st_size == whole + (40 + 2) + (40 + len("changed\n"))


async def test_without_git_a_pack_that_is_a_link_is_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()
    store = folder / "state" / "checkpoints" / f"{digest[:32]}.walk"
    store.mkdir(parents=True)
    (store / "pack").symlink_to(victim)  # planted in a state folder inside the folder
    checkpoints = walked(folder, monkeypatch)
    assert (await checkpoints.take([str(folder)])).trees == {}
    assert victim.read_text() == "mine\n"


def test_the_option_is_checked() -> None:
    options, unknown = parse_options({"checkpoints": {"maxFiles": 10, "enabled": False}})
    assert options.checkpoints == CheckpointOptions(enabled=False, max_files=10)
    assert unknown == []
    _, unknown = parse_options({"checkpoints": {"maxFile": 10}})
    assert unknown == ["checkpoints.maxFile"]  # a typo is logged, not ignored
    with pytest.raises(ParamsError, match="checkpoints"):
        parse_options({"checkpoints": {"maxMegabytes": "lots"}})


async def test_a_file_both_a_file_tool_and_bash_changed_is_one_change(
    server: Server, tmp_path: Path
) -> None:
    (tmp_path / "m.txt").write_text("original\n")
    steps = [
        ["Bash", {"command": "echo bash >> m.txt", "description": "append"}],
        ["Read", {"file_path": str(tmp_path / "m.txt")}],
        ["Write", {"file_path": str(tmp_path / "m.txt"), "content": "written\n"}],
        ["Bash", {"command": "echo again >> m.txt", "description": "append"}],
    ]
    session = new_session()
    async with server(permissionMode="acceptEdits") as client:
        result, _ = await allowed(client, session, "steps " + json.dumps(steps))
        assert (tmp_path / "m.txt").read_text() == "written\nagain\n"
        assert listed(result["changes"], tmp_path) == [("m.txt", "modified", 2, 1)]
        [file] = (await client.request("dave/changes", {"sessionId": session}))["files"]
        assert (file["before"], file["after"]) == ("original\n", "written\nagain\n")
        undone = await client.request("dave/revertChanges", {"sessionId": session})
    assert undone == {"reverted": [str(tmp_path / "m.txt")], "conflicts": []}
    assert (tmp_path / "m.txt").read_text() == "original\n"


async def test_a_lock_left_by_a_killed_git_does_not_stop_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    checkpoints = Checkpoints(tmp_path / "state" / "checkpoints")
    assert (await checkpoints.take([str(tmp_path)])).trees
    [repo] = (tmp_path / "state" / "checkpoints").iterdir()
    lock = repo / "index.lock"
    lock.write_bytes(b"")  # the server was killed while its git held the index
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    checkpoint = await checkpoints.take([str(tmp_path)])
    (tmp_path / "a.txt").write_text("b\n")
    assert [c.status for c in await checkpoints.changes(checkpoint)] == ["modified"]


async def test_a_notice_after_its_turn_ended_is_said_by_the_next_turn(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"f{i}.txt").write_text("x\n")
    checkpoints = Checkpoints(tmp_path / "state" / "checkpoints", CheckpointOptions(max_files=2))
    first: list[ev.Event] = []
    turn = TurnCheckpoint(checkpoints, [str(tmp_path)], first.append)  # a new folder: started
    assert await turn.changes([]) == []  # a turn without tools ends before the count does
    assert turn._task is not None
    await turn._task  # the count ends after the turn's reports were closed
    assert first == [] and checkpoints.unsaid
    second: list[ev.Event] = []
    TurnCheckpoint(checkpoints, [str(tmp_path)], second.append)
    said = [e.message for e in first + second if isinstance(e, ev.Status)]
    assert len(said) == 1 and "over 2 files" in (said[0] or "")


async def test_a_cancelled_turn_does_not_wait_for_a_first_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cancelled turn's tools are not known (None). When none of them waited for the
    # checkpoint (nothing that changes files ran), its end has nothing to compare: it
    # must not wait for a big folder's first checkpoint, or the cancel stalls.
    checkpoints = Checkpoints(tmp_path / "state" / "checkpoints", CheckpointOptions())
    take = checkpoints._take
    release = threading.Event()

    def slow(folders: list[str]) -> Checkpoint:
        release.wait(10)
        return take(folders)

    monkeypatch.setattr(checkpoints, "_take", slow)
    turn = TurnCheckpoint(checkpoints, [str(tmp_path)], lambda event: None)  # started
    await turn.before("Read")
    started = time.monotonic()
    assert await turn.changes(None) == []
    assert time.monotonic() - started < 1
    release.set()
