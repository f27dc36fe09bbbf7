"""Permission requests in a real headless Neovim (dave.permissions and its ledger, menus,
questions, plan and chat block; dave.rules): asked, answered, queued, dropped, allowed always.
The real server, the real Claude Code CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dave_lsp.testing.samples import QUESTION
from tests.harness.nvim import Editor, editor, wait_until
from tests.harness.nvim_plugin import (
    PLAIN_PROMPT,
    answer,
    answers,
    ask,
    bash,
    press_in_chat,
    prompts,
    tabs,
    warnings,
)


@PLAIN_PROMPT
def test_allowed_write_writes_the_file_and_shows_its_summary(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({ 'Allow' })")
    ed.command("Dave ask write notes.txt hello")
    ed.wait_text("Write notes.txt (5 bytes)")
    ed.wait_idle()
    assert (workdir / "notes.txt").read_text() == "hello"
    prompts = ed.lua("return vim.tbl_map(function(p) return p.prompt end, T.prompts)")
    assert len(prompts) == 1 and "Write" in prompts[0]
    assert "Tool said:" in answer(ed)


@PLAIN_PROMPT
def test_denied_write_leaves_no_file(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({ 'Deny' }, 'not today')")
    ed.command("Dave ask write secret.txt nope")
    ed.wait_text("Write denied")
    ed.wait_idle()
    assert not (workdir / "secret.txt").exists()
    assert "✓ Write secret.txt" not in ed.text()
    # The request was shown in full in the chat, and the reason given is echoed under it.
    block = ed.text().split("**? Allow Write secret.txt?**", 1)[1]
    assert "content: nope" in block and f"file_path: {workdir / 'secret.txt'}" in block
    assert "→ denied: not today" in block


@PLAIN_PROMPT
def test_permission_requests_queue_one_prompt_at_a_time(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({})")  # prompts stay open until the test answers
    ed.command("Dave ask write one.txt 1")
    ed.command("Dave new")
    ed.command("Dave ask write two.txt 22")
    pending = "return require('dave.permissions').pending()"
    ed.wait(lambda: ed.lua(pending) == 2, what="two permission requests")
    assert ed.lua("return #T.prompts") == 1  # one menu at a time
    assert any("a permission prompt is open already" in n["msg"] for n in ed.notes())
    ed.lua("T.choose(1, 'Allow')")
    assert ed.lua(pending) == 1  # the other one still waits: nothing opens unasked
    ed.command("Dave permissions")
    ed.wait(lambda: ed.lua("return #T.prompts") == 2, what="the second prompt")
    ed.lua("T.choose(2, 'Allow always')")
    wait_until(
        lambda: (workdir / "two.txt").exists() and (workdir / "one.txt").exists(), 15, "files"
    )
    assert ed.lua(pending) == 0


def test_allow_always_adds_a_rule_shown_in_the_chat_listed_and_removable(
    ed: Editor, workdir: Path
) -> None:
    one = workdir / "one.txt"
    one.write_text("1")
    ed.lua("T.answer_with({ 'Allow always' })")
    ed.command(f"Dave ask {bash('rm -f one.txt')}")
    ed.wait_text("✓ allowed always: Bash(rm -f one.txt)")
    ed.wait_idle()
    assert not one.exists()
    [asked] = prompts(ed)
    assert asked["items"] == [
        "Allow",
        "Allow always: this exact command  [Bash(rm -f one.txt)]",
        "Deny",
    ]

    # The same command again: the rule allows it, the chat says so, nothing is asked.
    one.write_text("1")
    ed.lua("T.answer_with({})")
    ed.command(f"Dave ask {bash('rm -f one.txt')}")
    ed.wait_text("✓ allowed by rule Bash(rm -f one.txt)")
    ed.wait_idle()
    assert not one.exists()
    assert prompts(ed) == []

    # Another command is not covered: it asks, offering its own exact rule.
    ed.lua("T.answer_with({ 'Allow' })")
    ed.command(f"Dave ask {bash('rm -f two.txt')}")
    ed.wait_idle()
    [asked] = prompts(ed)
    assert "Allow always: this exact command  [Bash(rm -f two.txt)]" in asked["items"]
    assert "allowed by rule Bash(rm -f two.txt)" not in ed.text()
    assert ed.text().count("allowed by rule") == 1

    # :Dave rules lists the one rule; picking it removes it.
    ed.lua("T.answer_with({ 'Bash(rm -f one.txt)' })")
    ed.command("Dave rules")
    ed.wait(
        lambda: any("removed the rule Bash(rm -f one.txt)" in n["msg"] for n in ed.notes()),
        what="the removed note",
    )
    [listed] = prompts(ed)
    assert listed["kind"] == "dave.rule"
    [item] = listed["items"]
    assert item.startswith("Bash(rm -f one.txt) — this exact command (added 20")
    ed.command("Dave rules")
    ed.wait(lambda: any("no rules" in n["msg"] for n in ed.notes()), what="the no-rules note")

    # Without the rule, the same command asks again.
    one.write_text("1")
    ed.lua("T.answer_with({ 'Deny' }, 'not now')")
    ed.command(f"Dave ask {bash('rm -f one.txt')}")
    ed.wait_text("Bash denied")
    ed.wait_idle()
    assert one.exists()
    assert len(prompts(ed)) == 1
    assert ed.text().count("allowed by rule") == 1


def test_rules_survive_a_server_restart(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({ 'Allow always' })")
    ed.command(f"Dave ask {bash('rm -f gone.txt')}")
    ed.wait_text("✓ allowed always: Bash(rm -f gone.txt)")
    ed.wait_idle()
    ed.command("Dave restart")
    ed.lua("T.answer_with({})")  # the list stays open
    ed.command("Dave rules")
    ed.wait(lambda: prompts(ed), what="the rule list")
    [listed] = prompts(ed)
    assert [i.split(" — ")[0] for i in listed["items"]] == ["Bash(rm -f gone.txt)"]
    ed.command(f"Dave ask {bash('rm -f gone.txt')}")
    ed.wait_text("✓ allowed by rule Bash(rm -f gone.txt)")
    ed.wait_idle()
    assert len(prompts(ed)) == 1  # only the rule list: nothing was asked


def test_rules_of_a_chat_that_never_asked(ed: Editor) -> None:
    ed.command("Dave new")
    ed.command("Dave rules")
    ed.wait(lambda: any("no rules" in n["msg"] for n in ed.notes()), what="the no-rules note")
    assert not [n for n in ed.notes() if n["level"] >= 3]


def test_an_old_server_offers_plain_allow_always(nvim_env: dict[str, str]) -> None:
    # A permissionRequest without allowAlways (servers before issue 12) keeps the old choice.
    with editor(nvim_env) as e:
        choices = e.lua("return (require('dave.permissions').choices({ toolName = 'Write' }))")
        assert choices == ["Allow", "Allow always", "Deny"]


@PLAIN_PROMPT
def test_cancel_closes_a_pending_permission_prompt(ed: Editor, workdir: Path) -> None:
    ed.lua("T.answer_with({})")  # the prompt stays open
    ed.command("Dave ask write late.txt late")
    ed.wait(lambda: ed.lua("return #T.prompts") == 1, what="the permission prompt")
    ed.command("Dave cancel")
    ed.wait_idle(timeout=6)
    assert ed.lua("return require('dave.permissions').pending()") == 0
    ed.lua("T.choose(1, 'Allow')")  # a late answer is dropped
    ed.command("Dave ask hello")
    ed.wait_text("You said: hello")
    assert not (workdir / "late.txt").exists()


def test_the_models_questions_are_asked_with_vim_ui_select(ed: Editor) -> None:
    ask_one = "tool AskUserQuestion " + json.dumps({"questions": [QUESTION]})
    ed.lua("T.answer_with({ 'Blue' })")
    ask(ed, ask_one)
    ed.wait_text('"Which color?"="Blue"')
    ed.wait_idle()
    [asked] = prompts(ed)
    assert asked["kind"] == "dave.question"
    assert asked["prompt"] == "[Color] Which color?"
    assert asked["items"] == ["Blue — calm", "Red — warm", "Other…"]
    assert answers(ed)[-1]["decision"] == "allow"
    assert answers(ed)[-1]["answers"] == {"Which color?": "Blue"}

    # Other…: the user's own words.
    ed.lua("T.answer_with({ 'Other' }, 'green please')")
    ask(ed, ask_one)
    ed.wait_text('"Which color?"="green please"')
    ed.wait_idle()

    # multiSelect: rounds until Done.
    multi = {**QUESTION, "multiSelect": True}
    ed.lua("T.answer_with({ 'Blue', 'Red', 'Done' })")
    ask(ed, "tool AskUserQuestion " + json.dumps({"questions": [multi]}))
    ed.wait_text('"Which color?"="Blue, Red"')
    ed.wait_idle()
    assert [p["items"] for p in prompts(ed)] == [
        ["Blue — calm", "Red — warm", "Other…", "Done"],
        ["Red — warm", "Other…", "Done"],
        ["Other…", "Done"],
    ]
    assert answers(ed)[-1]["answers"] == {"Which color?": ["Blue", "Red"]}

    # Dismissing the menu answers nothing; the chat shows the question, and `gd` there
    # declines it.
    ed.lua("T.answer_with({})")
    ask(ed, ask_one)
    ed.wait(lambda: len(prompts(ed)) == 1, what="the question")
    ed.lua("T.prompts[1].on_choice(nil)")
    assert ed.lua("return require('dave.permissions').pending()") == 1
    block = ed.text().rsplit("**? [Color] Which color?**", 1)[1]
    assert block.startswith("\n1. Blue — calm\n2. Red — warm\n")
    press_in_chat(ed, "gd")
    ed.wait_text("The user declined to answer.")
    assert "→ declined" in ed.text()
    ed.wait_idle()
    assert answers(ed)[-1]["decision"] == "deny"
    assert not warnings(ed)


def test_a_plan_is_shown_and_approved_into_accept_edits(ed: Editor, workdir: Path) -> None:
    ed.command("Dave mode plan")  # a chat the server does not know yet: created in plan mode
    ed.wait_text("_mode: plan_")
    ed.lua("T.answer_with({})")  # the approval stays open
    ask(ed, "plan # Tidy up | - rename x")
    ed.wait(lambda: len(prompts(ed)) == 1, what="the plan's approval")
    [asked] = prompts(ed)
    assert asked["kind"] == "dave.plan"
    assert asked["items"] == ["Approve", "Approve and accept edits", "Keep planning"]
    shown = ed.lua(
        "for _, win in ipairs(vim.api.nvim_list_wins()) do"
        " local buf = vim.api.nvim_win_get_buf(win)"
        " if vim.api.nvim_buf_get_name(buf):find('dave://plan/', 1, true) then"
        " return { lines = vim.api.nvim_buf_get_lines(buf, 0, -1, true),"
        " ft = vim.bo[buf].filetype, float = vim.api.nvim_win_get_config(win).relative ~= '' }"
        " end end"
    )
    assert shown == {"lines": ["# Tidy up", "- rename x"], "ft": "markdown", "float": True}
    ed.lua("T.choose(1, 'Approve and accept edits')")
    ed.wait_idle(timeout=30)
    assert answers(ed)[-1]["decision"] == "allow"
    assert answers(ed)[-1]["permissionMode"] == "acceptEdits"
    assert not ed.lua(
        "for _, b in ipairs(vim.api.nvim_list_bufs()) do"
        " if vim.api.nvim_buf_get_name(b):find('dave://plan/', 1, true) then return true end"
        " end return false"
    )
    # The approved mode holds: the next write runs without asking.
    ed.lua("T.answer_with({})")
    ask(ed, "write after-plan.txt done")
    ed.wait_text("Write after-plan.txt (4 bytes)")
    ed.wait_idle()
    assert (workdir / "after-plan.txt").read_text() == "done"
    assert prompts(ed) == []
    assert tabs(ed) == 1  # no diff tab either
    assert not warnings(ed)


@pytest.mark.parametrize("review_diff", [False], ids=["plain-prompt"])
def test_keep_planning_sends_the_feedback(ed: Editor) -> None:
    ed.command("Dave mode plan")
    ed.wait_text("_mode: plan_")
    ed.lua("T.answer_with({ 'Keep planning' }, 'add tests')")
    ask(ed, "plan # Tidy up | - rename x")
    ed.wait_idle(timeout=30)
    assert answers(ed)[-1] == {
        "requestId": answers(ed)[-1]["requestId"],
        "decision": "deny",
        "reason": "add tests",
    }
    assert "add tests" in answer(ed)
