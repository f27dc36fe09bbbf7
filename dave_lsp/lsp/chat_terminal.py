"""The terminal side of `dave-lsp chat`: the answer's text to stdout, notes to stderr,
and the user's answers to permission requests, questions and plans (only on a terminal;
`--yes` allows tools without asking)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO


class Terminal:
    """Where the chat writes, and how it asks the user."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.interactive = sys.stdin.isatty() and not args.yes
        self.at_line_start = True

    def text(self, text: str) -> None:
        if self.args.json or not text:
            return
        self.out.write(text)
        self.out.flush()
        self.at_line_start = text.endswith("\n")

    def note(self, line: str) -> None:
        if not self.at_line_start:
            self.out.write("\n")
            self.out.flush()
            self.at_line_start = True
        self.err.write(line + "\n")
        self.err.flush()

    def diff(self, proposal: dict[str, Any]) -> None:
        """A proposed change, before its question: coloured on a terminal."""
        text = str(proposal.get("diff") or "")
        if proposal.get("binary"):
            text = f"(binary file {proposal.get('path')}: no diff)\n"
        elif not text:
            text = f"(no diff for {proposal.get('path')}: too large)\n"
        colour = self.err.isatty()
        for line in text.splitlines():
            code = ""
            if colour and line.startswith(("+++", "---")):
                code = "1"
            elif colour and line.startswith("+"):
                code = "32"
            elif colour and line.startswith("-"):
                code = "31"
            elif colour and line.startswith("@@"):
                code = "36"
            self.note(f"\x1b[{code}m{line}\x1b[0m" if code else line)

    async def _line(self) -> str:
        line: str = await asyncio.to_thread(sys.stdin.readline)
        return line.strip()

    async def answer_questions(self, questions: list[Any]) -> dict[str, Any] | None:
        """The user's answers to the model's questions, or None to decline: an option's
        number (several, comma-separated, where more than one may be chosen), or words
        of their own. Only on a terminal: `--yes` allows tools, it cannot answer."""
        if not self.interactive:
            self.note("  declined the model's questions (answer them in an interactive chat)")
            return None
        answers: dict[str, Any] = {}
        for item in questions:
            if not isinstance(item, dict) or not isinstance(item.get("question"), str):
                continue
            options = [o for o in item.get("options") or [] if isinstance(o, dict)]
            header = f"[{item['header']}] " if item.get("header") else ""
            self.note(f"  {header}{item['question']}")
            for number, option in enumerate(options, 1):
                detail = f" - {option['description']}" if option.get("description") else ""
                self.note(f"    {number}. {option.get('label')}{detail}")
            many = " (numbers, comma-separated)" if item.get("multiSelect") else ""
            self.note(f"  answer with a number{many} or your own words; empty declines")
            line = await self._line()
            if not line:
                return None
            picked = [p.strip() for p in line.split(",")] if item.get("multiSelect") else [line]
            if all(p.isdigit() and 1 <= int(p) <= len(options) for p in picked):
                labels = [str(options[int(p) - 1].get("label")) for p in picked]
                answers[item["question"]] = labels if item.get("multiSelect") else labels[0]
            else:
                answers[item["question"]] = line
        return answers

    async def approve_plan(self, plan: str) -> tuple[str, str, str | None]:
        """(decision, feedback, mode) for the model's plan."""
        self.note("  The model's plan:")
        for line in (plan or "(the model wrote no plan)").splitlines():
            self.note(f"    {line}")
        if not self.interactive:
            self.note("  kept planning (approve plans in an interactive chat)")
            return "deny", "dave-lsp chat runs non-interactively; keep planning", None
        self.note("  approve? [y]es / [e]dits too (acceptEdits) / [n]o, with feedback")
        line = (await self._line()).lower()
        if line in ("y", "yes"):
            return "allow", "", None
        if line in ("e", "edits"):
            return "allow", "", "acceptEdits"
        self.note("  feedback for the model (optional):")
        return "deny", await self._line() or "Keep planning.", None

    async def ask(self, message: str, always: str = "") -> tuple[str, str]:
        """The user's answer to a permission request: (decision, reason). `always` says
        what "always" would allow."""
        if self.args.yes:
            self.note(f"  allowed (--yes): {message}")
            return "allow", ""
        if not self.interactive:
            self.note(f"  denied (not interactive; pass --yes to allow): {message}")
            return "deny", "dave-lsp chat runs non-interactively; rerun with --yes to allow tools"
        always = f" ({always})" if always else ""
        self.note(f"  {message} [y]es / [a]lways{always} / [n]o")
        line = (await self._line()).lower()
        if line in ("y", "yes"):
            return "allow", ""
        if line in ("a", "always"):
            return "allowAlways", ""
        return "deny", "The user said no."
