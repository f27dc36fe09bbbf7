"""Rewind and fork in a real headless Neovim (dave.rewind, issue 27): `:Dave rewind N`
restores the file the rewound turns wrote and takes their prompts off the chat,
`:Dave rewind!` rewinds the conversation only, a turn that does not exist is one warning,
and `:Dave fork` (a picker of the chat's turns) opens a chat holding the turns up to the one
picked while the chat forked keeps all of its own.
The real server, the real Claude Code CLI and the shipped fake model (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from dave_lsp.testing import FakeModelServer
from tests.harness.nvim import Editor
from tests.harness.nvim_plugin import ask, model_saw, prompt_area, prompts, steps, warnings


def turn(ed: Editor, prompt: str, shows: str) -> None:
    ask(ed, prompt)
    ed.wait_text(shows, 60)
    ed.wait_idle(60)


def test_rewind_restores_the_file_and_takes_the_turns_off_the_chat(
    ed: Editor, workdir: Path
) -> None:
    notes = workdir / "notes.txt"
    ed.command("Dave mode acceptEdits")  # the writes go unasked
    ed.wait_text("_mode: acceptEdits_")
    turn(ed, "write notes.txt one", "Write notes.txt (3 bytes)")
    second = steps(
        ("Read", {"file_path": str(notes)}),
        ("Write", {"file_path": str(notes), "content": "two"}),
    )
    turn(ed, second, "1 file changed")
    assert notes.read_text() == "two"
    assert ed.lua("return #T.session().transcript") == 4

    ed.command("Dave rewind 2")
    ed.wait_text("↶ rewound to before turn 2", 30)
    assert notes.read_text() == "one", "the file is as turn 1 left it"
    text = ed.text()
    assert "↶ restored notes.txt" in text
    assert "write notes.txt one" in text, "turn 1 stays"
    assert '"content": "two"' not in text, "turn 2's prompt left the chat"
    assert text.count("## You") == 1
    assert prompt_area(ed) == [second], "the rewound prompt waits in the prompt area"
    ed.lua("vim.api.nvim_buf_set_lines(T.session().chat.prompt, 0, -1, false, {})")
    assert ed.lua("return T.session().transcript") == [
        {"role": "user", "content": "write notes.txt one"},
        {"role": "assistant", "content": ed.lua("return T.session().transcript[2].content")},
    ]

    # The chat goes on from turn 1: the next prompt is turn 2 again.
    turn(ed, "after the rewind", "You said: after the rewind")
    assert ed.text().count("## You") == 2

    # A turn that does not exist: one warning naming the turns there are.
    ed.command("Dave rewind 7")
    ed.wait(lambda: any("could not rewind" in w for w in warnings(ed)), what="the warning")
    [warning] = [w for w in warnings(ed) if "could not rewind" in w]
    assert "\n" not in warning and "7" in warning, warning

    # The conversation only: the files stay.
    ed.command("Dave rewind! 1")
    ed.wait_text("↶ rewound to before turn 1 (the conversation only; files left as they are)", 30)
    assert notes.read_text() == "one"
    assert ed.text().count("## You") == 0
    assert ed.lua("return #T.session().transcript") == 0


def test_fork_picks_a_turn_and_opens_a_chat_holding_the_turns_up_to_it(
    ed: Editor, fake_model: FakeModelServer
) -> None:
    turn(ed, "hello one", "You said: hello one")
    turn(ed, "hello two", "You said: hello two")
    original = ed.lua("return T.session().id")
    ed.lua("T.answer_with({ '1:' })")
    ed.command("Dave fork")
    [picker] = ed.wait(lambda: prompts(ed), what="the picker of turns")
    assert picker["kind"] == "dave.turn"
    assert picker["items"] == ["1: hello one", "2: hello two"]
    ed.wait(lambda: ed.lua("return T.session().id") != original, 30, "the forked chat")
    ed.wait_text("You said: hello one", 30)
    forked = ed.text()
    assert "forked from hello one at turn 1" in forked
    assert "hello two" not in forked
    assert ed.lua("return T.session().chat.title") == "hello one (fork)"
    # The chat forked keeps both of its turns, and is still there.
    assert (
        ed.lua(
            "local s = require('dave.sessions').get(...); return s and s.chat:text()", original
        ).count("## You")
        == 2
    )

    # The fork goes on from turn 1 on its own: the model sees turn 1, not turn 2.
    turn(ed, "hello three", "You said: hello three")
    assert ed.lua("return T.session().id") != original
    seen = model_saw(fake_model, "hello three")
    assert "hello one" in seen and "hello two" not in seen, seen
    assert ed.text().count("## You") == 2
