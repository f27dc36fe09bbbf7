"""Unit tests of change review: proposals of file tools, a turn's change log, its store
and revert. Pure and fast: real files in tmp_path, no server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dave_lsp.lsp import outgoing
from dave_lsp.lsp import protocol as proto
from dave_lsp.review import diff as review_diff
from dave_lsp.review.change_store import ChangeStore
from dave_lsp.review.changes import ChangeRecorder, ChangeSet, FileChange
from dave_lsp.review.diff import edited_feedback, unified_diff
from dave_lsp.review.proposals import proposal_for
from dave_lsp.review.revert import HunkRef, revert

TEN = "".join(f"line {n}\n" for n in range(1, 11))


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_bytes(text.encode("utf-8"))
    return path


def turn_of(cwd: Path, edits: dict[str, str | None], turn: int = 1) -> ChangeSet:
    """A change set made the way a turn makes it: snapshot, change the files, finish."""
    recorder = ChangeRecorder(str(cwd))
    for name in edits:
        recorder.before(name)
    for name, text in edits.items():
        if text is None:
            (cwd / name).unlink()
        else:
            write(cwd / name, text)
    return ChangeSet("s1", turn, str(cwd), tuple(recorder.finish()))


# ---------------------------------------------------------------- proposals


def test_edit_proposal_holds_the_exact_texts(tmp_path: Path) -> None:
    write(tmp_path / "a.py", "x = 1\ny = 2\n")
    tool_input = {"file_path": "a.py", "old_string": "y = 2", "new_string": "y = 3"}
    proposal = proposal_for("Edit", tool_input, str(tmp_path))
    assert proposal is not None
    assert proto.unstructure(outgoing.proposal_info(proposal)) == {
        "path": str(tmp_path / "a.py"),
        "exists": True,
        "original": "x = 1\ny = 2\n",
        "proposed": "x = 1\ny = 3\n",
        "diff": "--- a.py\n+++ a.py\n@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3\n",
    }


def test_new_file_proposal(tmp_path: Path) -> None:
    tool_input = {"file_path": str(tmp_path / "new" / "n.txt"), "content": "hi\n"}
    proposal = proposal_for("Write", tool_input, str(tmp_path))
    assert proposal is not None
    data = proto.unstructure(outgoing.proposal_info(proposal))
    assert data["exists"] is False and data["original"] == "" and data["proposed"] == "hi\n"
    assert data["diff"] == "--- /dev/null\n+++ new/n.txt\n@@ -0,0 +1 @@\n+hi\n"


def test_replace_all_and_uniqueness(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "foo bar foo\n")
    once = {"file_path": "a.txt", "old_string": "foo", "new_string": "baz"}
    assert proposal_for("Edit", once, str(tmp_path)) is None  # two matches
    every = {**once, "replace_all": True}
    proposal = proposal_for("Edit", every, str(tmp_path))
    assert proposal is not None and proposal.proposed == "baz bar baz\n"


def test_old_string_missing_gives_no_proposal(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "hello\n")
    tool_input = {"file_path": "a.txt", "old_string": "absent", "new_string": "x"}
    assert proposal_for("Edit", tool_input, str(tmp_path)) is None
    assert proposal_for("NotebookEdit", {"notebook_path": "a.ipynb"}, str(tmp_path)) is None


def test_multi_edit_applies_in_order(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "one\ntwo\n")
    edits = [
        {"old_string": "one", "new_string": "uno"},
        {"old_string": "uno\ntwo", "new_string": "uno\ndos"},
    ]
    proposal = proposal_for("MultiEdit", {"file_path": "a.txt", "edits": edits}, str(tmp_path))
    assert proposal is not None and proposal.proposed == "uno\ndos\n"


def test_edit_as_the_cli_writes_it(tmp_path: Path) -> None:
    # CRLF kept, curly quotes matched and kept, trailing spaces of new_string dropped.
    write(tmp_path / "w.txt", "say \u201chi\u201d\r\nend\r\n")
    tool_input = {"file_path": "w.txt", "old_string": 'say "hi"', "new_string": 'say "bye"  '}
    proposal = proposal_for("Edit", tool_input, str(tmp_path))
    assert proposal is not None
    assert proposal.proposed == "say \u201cbye\u201d\r\nend\r\n"
    # Deleting a whole line deletes its newline too.
    write(tmp_path / "d.txt", "a\nb\nc\n")
    delete = {"file_path": "d.txt", "old_string": "b", "new_string": ""}
    proposal = proposal_for("Edit", delete, str(tmp_path))
    assert proposal is not None and proposal.proposed == "a\nc\n"


def test_binary_and_oversized(tmp_path: Path) -> None:
    write(tmp_path / "b.bin", b"\x00\x01\xff")
    over = {"file_path": "b.bin", "content": "text"}
    proposal = proposal_for("Write", over, str(tmp_path))
    assert proposal is not None
    assert proto.unstructure(outgoing.proposal_info(proposal)) == {
        "path": str(tmp_path / "b.bin"),
        "exists": True,
        "diff": "",
        "binary": True,
    }
    edit = {"file_path": "b.bin", "old_string": "a", "new_string": "b"}
    assert proposal_for("Edit", edit, str(tmp_path)) is None
    big = "".join(f"{n:07d}\n" for n in range(review_diff.MAX_SIDE_BYTES // 8 + 10))
    write(tmp_path / "big.txt", big)
    tool_input = {"file_path": "big.txt", "old_string": "0000003\n", "new_string": "three\n"}
    proposal = proposal_for("Edit", tool_input, str(tmp_path))
    assert proposal is not None
    data = proto.unstructure(outgoing.proposal_info(proposal))
    assert data["truncated"] is True and "original" not in data and "proposed" not in data
    assert "-0000003\n+three\n" in data["diff"] and len(data["diff"]) < 500


def test_edited_feedback_holds_the_users_diff() -> None:
    feedback = edited_feedback("a\nb\n", "a\nB\n", "src/x.py")
    assert "src/x.py" in feedback
    assert "--- src/x.py (your proposal)\n+++ src/x.py (what the user accepted)\n" in feedback
    assert "-b\n+B\n" in feedback
    assert edited_feedback("same", "same", "x") == ""
    long = edited_feedback("", "".join(f"{n}\n" for n in range(20000)), "x")
    assert len(long) < review_diff.MAX_FEEDBACK_DIFF_CHARS + 1000 and "diff cut" in long


def test_diff_without_final_newline() -> None:
    diff = unified_diff("a\nb", "a\nc", "f")
    assert diff == (
        "--- f\n+++ f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n"
        "+c\n\\ No newline at end of file\n"
    )


# ---------------------------------------------------------------- recorder


def test_recorder_statuses_and_counts(tmp_path: Path) -> None:
    write(tmp_path / "mod.txt", "a\nb\nc\n")
    write(tmp_path / "gone.txt", "x\ny\n")
    write(tmp_path / "same.txt", "same\n")
    recorder = ChangeRecorder(str(tmp_path))
    recorder.before_tool("Edit", {"file_path": str(tmp_path / "mod.txt")})
    recorder.before("gone.txt")
    recorder.before("new.txt")
    recorder.before("same.txt")
    recorder.before_tool("Bash", {"command": "ls"})  # not a file tool: ignored
    write(tmp_path / "mod.txt", "a\nB\nc\nd\n")
    recorder.before("mod.txt")  # a second touch keeps the first snapshot
    (tmp_path / "gone.txt").unlink()
    write(tmp_path / "new.txt", "1\n2\n3\n")
    write(tmp_path / "same.txt", "other\n")
    write(tmp_path / "same.txt", "same\n")
    changes = [proto.unstructure(outgoing.change_summary(change)) for change in recorder.finish()]
    assert changes == [
        {"path": str(tmp_path / "mod.txt"), "status": "modified", "added": 2, "removed": 1},
        {"path": str(tmp_path / "gone.txt"), "status": "deleted", "added": 0, "removed": 2},
        {"path": str(tmp_path / "new.txt"), "status": "created", "added": 3, "removed": 0},
    ]


# ---------------------------------------------------------------- store


def test_store_round_trip_across_a_restart(tmp_path: Path) -> None:
    cwd = tmp_path / "project"
    write(cwd / "a.txt", "old\n")
    write(cwd / "b.bin", b"\x00old")
    change_set = turn_of(cwd, {"a.txt": "new\n", "b.bin": b"\x00new".decode("latin-1")})
    ChangeStore(tmp_path / "changes").save(change_set)
    again = ChangeStore(tmp_path / "changes")  # a new server
    assert again.turns("s1") == [1]
    loaded = again.load("s1")
    assert loaded == change_set
    assert proto.unstructure(outgoing.changes_result("s1", loaded))["files"][0] == {
        "path": str(cwd / "a.txt"),
        "status": "modified",
        "added": 1,
        "removed": 1,
        "before": "old\n",
        "after": "new\n",
        "diff": "--- a.txt\n+++ a.txt\n@@ -1 +1 @@\n-old\n+new\n",
    }
    assert again.load("other") is None and again.load("s1", turn=2) is None
    again.delete_session("s1")
    assert again.turns("s1") == [] and again.load("s1") is None


def test_store_bound_drops_the_oldest(tmp_path: Path) -> None:
    store = ChangeStore(tmp_path / "changes", max_turns=3)
    for turn in range(1, 6):
        store.save(turn_of(tmp_path / "p", {"a.txt": f"v{turn}\n"}, turn=turn))
    assert store.turns("s1") == [3, 4, 5]
    newest = store.load("s1")
    assert newest is not None and newest.turn == 5
    # The byte bound: older turns are dropped until the session fits; a turn over it
    # alone keeps hashes only.
    small = ChangeStore(tmp_path / "small", max_bytes=4096)
    small.save(turn_of(tmp_path / "q", {"a.txt": "x" * 1500}, turn=1))
    small.save(turn_of(tmp_path / "q", {"a.txt": "y" * 1500}, turn=2))
    assert small.turns("s1") == [2]
    kept = small.save(turn_of(tmp_path / "q", {"a.txt": "z" * 10000}, turn=3))
    assert small.turns("s1") == [3]
    # Its largest side went; the one a revert needs stayed, and a revert still works.
    change = kept.files[0]
    assert change.before is not None and change.before.kept
    assert change.after is not None and not change.after.kept
    assert proto.unstructure(outgoing.change_summary(change))["truncated"] is True
    assert small.load("s1") == kept
    assert sum(p.stat().st_size for p in (tmp_path / "small").rglob("*.json")) <= 4096
    assert revert(kept).conflicts == ()
    assert (tmp_path / "q" / "a.txt").read_text() == "y" * 1500


def test_empty_turn_is_not_stored(tmp_path: Path) -> None:
    store = ChangeStore(tmp_path / "changes")
    store.save(ChangeSet("s1", 1, str(tmp_path), ()))
    assert store.turns("s1") == []


# ---------------------------------------------------------------- revert


def test_revert_all(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "a\n")
    write(tmp_path / "b.txt", "b\n")
    change_set = turn_of(tmp_path, {"a.txt": "A\n", "b.txt": "B\n"})
    result = revert(change_set)
    assert proto.unstructure(outgoing.revert_result(result)) == {
        "reverted": [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")],
        "conflicts": [],
    }
    assert (tmp_path / "a.txt").read_text() == "a\n" and (tmp_path / "b.txt").read_text() == "b\n"
    assert revert(change_set).conflicts == ()  # already as it was: nothing to do


def test_revert_one_file_keeps_its_mode(tmp_path: Path) -> None:
    write(tmp_path / "a.sh", "a\n")
    os.chmod(tmp_path / "a.sh", 0o750)
    write(tmp_path / "b.txt", "b\n")
    change_set = turn_of(tmp_path, {"a.sh": "A\n", "b.txt": "B\n"})
    result = revert(change_set, paths=["a.sh"])
    assert result.reverted == (str(tmp_path / "a.sh"),) and result.conflicts == ()
    assert (tmp_path / "a.sh").read_text() == "a\n" and (tmp_path / "b.txt").read_text() == "B\n"
    assert (tmp_path / "a.sh").stat().st_mode & 0o777 == 0o750
    unknown = revert(change_set, paths=["c.txt"])
    assert unknown.conflicts[0].message == "c.txt was not changed by turn 1."


def test_revert_one_hunk_of_two(tmp_path: Path) -> None:
    before = "".join(f"line {n}\n" for n in range(1, 21))
    after = before.replace("line 2\n", "LINE 2\n").replace("line 15\n", "LINE 15\n")
    write(tmp_path / "t.txt", before)
    change_set = turn_of(tmp_path, {"t.txt": after})
    assert change_set.files[0].diff(str(tmp_path)).count("\n@@ -") == 2
    result = revert(change_set, hunks=[HunkRef("t.txt", 1)])
    assert result.reverted == (str(tmp_path / "t.txt"),)
    assert (tmp_path / "t.txt").read_text() == before.replace("line 2\n", "LINE 2\n")
    # The other hunk still reverts, though the file is no longer the turn's result.
    assert revert(change_set, hunks=[HunkRef("t.txt", 0)]).reverted
    assert (tmp_path / "t.txt").read_text() == before
    # Done already, or never there: a conflict, and the file stays.
    again = revert(change_set, hunks=[HunkRef("t.txt", 0), HunkRef("t.txt", 7)])
    assert "there is no hunk 7" in again.conflicts[0].message
    assert (
        "no longer matches" in revert(change_set, hunks=[HunkRef("t.txt", 0)]).conflicts[0].message
    )
    assert (tmp_path / "t.txt").read_text() == before


def test_conflict_keeps_the_users_text_byte_for_byte(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "a\n")
    write(tmp_path / "b.txt", "b\n")
    change_set = turn_of(tmp_path, {"a.txt": "A\n", "b.txt": "B\n"})
    mine = b"A\nmy own work\r\n\xff"
    write(tmp_path / "a.txt", mine)
    result = revert(change_set)
    assert result.reverted == (str(tmp_path / "b.txt"),)
    assert [c.path for c in result.conflicts] == [str(tmp_path / "a.txt")]
    assert result.conflicts[0].message.startswith("a.txt has changed since turn 1")
    assert (tmp_path / "a.txt").read_bytes() == mine
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".dave-revert-")]


def test_revert_of_a_created_file_deletes_it(tmp_path: Path) -> None:
    change_set = turn_of(tmp_path, {"new.txt": "fresh\n"})
    assert change_set.files[0].status == "created"
    assert revert(change_set).reverted == (str(tmp_path / "new.txt"),)
    assert not (tmp_path / "new.txt").exists()


def test_a_deleted_file_is_recreated(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "old.txt", "keep me\n")
    os.chmod(tmp_path / "sub" / "old.txt", 0o640)
    change_set = turn_of(tmp_path, {"sub/old.txt": None})
    assert change_set.files[0].status == "deleted"
    (tmp_path / "sub").rmdir()
    assert revert(change_set).conflicts == ()
    assert (tmp_path / "sub" / "old.txt").read_text() == "keep me\n"
    assert (tmp_path / "sub" / "old.txt").stat().st_mode & 0o777 == 0o640


def test_a_change_through_a_link_is_its_target_s_and_revert_never_follows_a_new_link(
    tmp_path: Path,
) -> None:
    write(tmp_path / "real.txt", "a\n")
    write(tmp_path / "elsewhere.txt", "A\n")
    os.symlink(tmp_path / "real.txt", tmp_path / "link.txt")
    change_set = turn_of(tmp_path, {"link.txt": "A\n"})
    # Recorded as the file the write changed; found by the link's name too.
    [change] = change_set.files
    assert change.path == change.real == str(tmp_path / "real.txt")
    assert change_set.find("link.txt") is change
    # The link now leads elsewhere: the revert still restores the file the turn changed,
    # and neither the link nor its new target is touched.
    (tmp_path / "link.txt").unlink()
    os.symlink(tmp_path / "elsewhere.txt", tmp_path / "link.txt")
    [conflict] = revert(change_set, paths=["link.txt"]).conflicts
    assert conflict.message == "link.txt was not changed by turn 1."
    assert revert(change_set).conflicts == ()
    assert (tmp_path / "real.txt").read_text() == "a\n"
    assert (tmp_path / "elsewhere.txt").read_text() == "A\n"
    assert os.readlink(tmp_path / "link.txt") == str(tmp_path / "elsewhere.txt")
    # A folder on the changed file's path replaced by a link: nothing is written.
    write(tmp_path / "sub" / "f.txt", "b\n")
    change_set = turn_of(tmp_path, {"sub/f.txt": "B\n"})
    os.rename(tmp_path / "sub", tmp_path / "moved")
    write(tmp_path / "other" / "f.txt", "B\n")
    os.symlink(tmp_path / "other", tmp_path / "sub")
    result = revert(change_set)
    assert "leads somewhere else" in result.conflicts[0].message
    assert (tmp_path / "other" / "f.txt").read_text() == "B\n"


def test_hunks_of_a_created_file_are_refused(tmp_path: Path) -> None:
    change_set = turn_of(tmp_path, {"n.txt": "x\n"})
    result = revert(change_set, hunks=[HunkRef("n.txt", 0)])
    assert "revert the whole file" in result.conflicts[0].message
    assert (tmp_path / "n.txt").exists()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("", "a\n"),
        ("a\n", ""),
        ("a\nb", "a\nb\n"),
        (TEN, TEN[5:] + "x\n"),
        ("a\r\nb\r\n", "a\r\nc\r\n"),
    ],
)
def test_reverting_every_hunk_gives_the_before_text(
    tmp_path: Path, before: str, after: str
) -> None:
    write(tmp_path / "f.txt", before)
    change_set = turn_of(tmp_path, {"f.txt": after})
    change = change_set.files[0]
    assert isinstance(change, FileChange) and change.status == "modified"
    indices = range(len(change.hunks()))
    assert revert(change_set, hunks=[HunkRef("f.txt", i) for i in indices]).conflicts == ()
    assert (tmp_path / "f.txt").read_bytes() == before.encode()
