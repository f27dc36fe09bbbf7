"""`dave-lsp chat`: a headless client for terminals, scripts and tests.

It starts the server over stdio like an editor does, sends prompts to one session
and streams the answer: the answer's text to stdout, everything else (tool results,
permission prompts, status, errors) to stderr, so `dave-lsp chat "..." > answer.txt`
keeps just the answer. It exits non-zero when a query fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import uuid
from base64 import b64encode
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TextIO, get_args

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.io_ import run_async
from pygls.lsp.client import LanguageClient

from dave_lsp import PROTOCOL_VERSION, __version__
from dave_lsp.backends import registry
from dave_lsp.config import env_pairs
from dave_lsp.lsp.protocol import (
    HISTORY,
    PERMISSION,
    QUERY,
    REQUEST_CANCELLED,
    PermissionMode,
    rpc_converter,
)

DEMO_NOTE = (
    "demo: answers come from dave-lsp's scripted offline model, not a real model. "
    "Try: hello | write notes.txt Hello | recall | slow 40 | error 500"
)


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prompt", nargs="*", help="the prompt; without one, prompts are read from stdin, one a line"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run against the shipped scripted model on 127.0.0.1 (no API key)",
    )
    parser.add_argument("--session", default=None, help="session id (default: a new one)")
    parser.add_argument("--cwd", default=None, help="the session's working folder")
    parser.add_argument("--model", default=None)
    parser.add_argument("--backend", choices=registry.names(), default=None)
    parser.add_argument(
        "--permission-mode",
        default=None,
        choices=list(get_args(PermissionMode)),
    )
    parser.add_argument("--openai-base-url", default=None)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the backend process (repeatable)",
    )
    parser.add_argument(
        "--yes", action="store_true", help="allow every permission request without asking"
    )
    parser.add_argument(
        "--trust",
        action="store_true",
        help="trust the --cwd folder for this run: its Claude Code project settings load "
        "(hooks, MCP servers, env), which run code",
    )
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="FILE",
        help="attach an image (png, jpeg, gif, webp) to the first prompt (repeatable)",
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="print the --session's conversation first (then exit, unless a prompt is given)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each query's result as one JSON line instead of the text",
    )
    parser.add_argument(
        "--server", default=None, help="the server command (default: this Python's `-m dave_lsp`)"
    )


class ChatError(Exception):
    """A failure to report as one line and exit 1."""


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


def _server_command(args: argparse.Namespace) -> list[str]:
    if args.server:
        import shlex

        return shlex.split(args.server)
    return [sys.executable, "-m", "dave_lsp"]


@contextlib.contextmanager
def _demo(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Start the scripted model and the options that point the backend at it."""
    if not args.demo:
        yield {}
        return
    from dave_lsp.testing import FakeModelServer

    fake = FakeModelServer()
    fake.start()
    with tempfile.TemporaryDirectory(prefix="dave-demo-") as home:
        env = {
            "ANTHROPIC_BASE_URL": fake.url,
            "ANTHROPIC_API_KEY": "sk-ant-demo-not-a-real-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "OPENAI_API_KEY": "sk-demo-not-a-real-key",
            "HOME": home,
        }
        try:
            yield {"env": env, "openai": {"baseUrl": fake.url + "/v1"}}
        finally:
            fake.stop()


def _init_options(args: argparse.Namespace, demo: dict[str, Any]) -> dict[str, Any]:
    # One session per chat: a spare client would only cost a process.
    options: dict[str, Any] = {**demo, "prewarm": 0}
    try:
        env = env_pairs(args.env, options.get("env", {}))
    except ValueError as exc:
        raise ChatError(str(exc)) from None
    if env:
        options["env"] = env
    for key, value in (
        ("model", args.model),
        ("backend", args.backend),
        ("permissionMode", args.permission_mode),
        ("cwd", args.cwd),
    ):
        if value is not None:
            options[key] = value
    if args.openai_base_url:
        options["openai"] = {"baseUrl": args.openai_base_url}
    if args.trust:
        options["trustedFolders"] = [os.path.abspath(args.cwd or os.getcwd())]
    return options


async def _prompts(args: argparse.Namespace, term: Terminal) -> AsyncIterator[str]:
    """The prompts: the arguments, or stdin's lines (read in a thread, so the loop keeps
    serving the server's reports and permission answers while it waits)."""
    if args.prompt:
        yield " ".join(args.prompt)
        return
    while True:
        if term.interactive:
            term.err.write("> ")
            term.err.flush()
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        if line.strip():
            yield line.rstrip("\n")


IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp"}  # fmt: skip


def _images(paths: list[str]) -> list[dict[str, str]]:
    """`--image` files as `attachments`; ChatError naming a file that is not one."""
    attachments = []
    for path in paths:
        media = IMAGE_TYPES.get(Path(path).suffix.lower())
        if media is None:
            raise ChatError(f"--image {path}: not a png, jpeg, gif or webp file")
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ChatError(f"--image {path}: {exc.strerror or exc}") from None
        attachments.append({"type": "image", "mediaType": media, "data": b64encode(data).decode()})
    return attachments


def _root_uri(options: dict[str, Any]) -> str:
    return Path(os.path.abspath(options.get("cwd") or os.getcwd())).as_uri()


class ChatClient:
    """One server process and one session."""

    def __init__(self, args: argparse.Namespace, term: Terminal) -> None:
        self.args = args
        self.term = term
        self.session_id = args.session or f"chat-{uuid.uuid4()}"
        self.client = LanguageClient("dave-lsp-chat", __version__, converter_factory=rpc_converter)
        self.process: asyncio.subprocess.Process | None = None
        self.stderr_file = tempfile.TemporaryFile()
        self.reports: dict[str | int, asyncio.Queue[dict[str, Any]]] = {}
        self.answering: set[asyncio.Task[None]] = set()
        # Ends the loop that reads the server's output.
        self.stop_event = threading.Event()

        def on_progress(params: lsp.ProgressParams) -> None:
            queue = self.reports.get(params.token)
            if queue is not None and isinstance(params.value, dict):
                queue.put_nowait(params.value)

        # Registered by a call, not a decorator: pygls's decorator is untyped.
        self.client.feature(lsp.PROGRESS)(on_progress)

    async def start(self, options: dict[str, Any]) -> None:
        command = _server_command(self.args)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=self.stderr_file,
            )
        except OSError as exc:
            raise ChatError(f"cannot start the server {command[0]!r}: {exc.strerror}") from None
        assert self.process.stdin is not None and self.process.stdout is not None
        self.client.protocol.set_writer(self.process.stdin)
        self.reader = asyncio.create_task(
            run_async(
                stop_event=self.stop_event,
                reader=self.process.stdout,
                protocol=self.client.protocol,
            )
        )
        try:
            result = await asyncio.wait_for(
                self.client.initialize_async(
                    lsp.InitializeParams(
                        capabilities=lsp.ClientCapabilities(),
                        process_id=os.getpid(),
                        root_uri=_root_uri(options),
                        initialization_options=options,
                        client_info=lsp.ClientInfo(name="dave-lsp chat", version=__version__),
                    )
                ),
                30,
            )
        except JsonRpcException as exc:
            raise ChatError(f"the server refused to start: {exc.message}") from None
        except (TimeoutError, ConnectionError, BrokenPipeError):
            raise ChatError(f"the server did not answer initialize{self._stderr_tail()}") from None
        dave = (result.capabilities.experimental or {}).get("dave", {})
        if dave.get("version") != PROTOCOL_VERSION:
            raise ChatError(
                f"the server speaks dave protocol {dave.get('version')!r}, "
                f"this client {PROTOCOL_VERSION}; update one of them"
            )
        self.client.initialized(lsp.InitializedParams())

    def _stderr_tail(self) -> str:
        self.stderr_file.seek(0)
        lines = self.stderr_file.read().decode(errors="replace").strip().splitlines()
        return f": {lines[-1]}" if lines else ""

    async def query(self, prompt: str, attachments: list[dict[str, str]]) -> dict[str, Any]:
        token = f"chat-{uuid.uuid4()}"
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reports[token] = queue
        request = asyncio.ensure_future(
            self.client.protocol.send_request_async(
                QUERY,
                {
                    "sessionId": self.session_id,
                    "prompt": prompt,
                    "workDoneToken": token,
                    "attachments": attachments,
                },
            )
        )
        pump = asyncio.create_task(self._show(queue))
        try:
            result = await request
        except JsonRpcException as exc:
            self.term.note("")
            if exc.code == REQUEST_CANCELLED:
                raise ChatError(f"cancelled: {exc.message}") from None
            raise ChatError(exc.message) from None
        finally:
            await asyncio.sleep(0)  # let reports that came before the answer be shown
            pump.cancel()
            self.reports.pop(token, None)
            while not queue.empty():
                self._show_one(queue.get_nowait())
        self.term.text("" if self.term.at_line_start else "\n")
        return result if isinstance(result, dict) else {}

    async def history(self) -> None:
        """Print the session's conversation (`dave/history`) to stdout: prompts as `> `
        lines, answers as they were, tool uses as the live chat notes them."""
        try:
            found = await self.client.protocol.send_request_async(
                HISTORY, {"sessionId": self.session_id}
            )
        except JsonRpcException as exc:
            raise ChatError(exc.message) from None
        if self.args.json:
            self.term.out.write(json.dumps(found) + "\n")
        elif not found.get("available", True):
            self.term.note(f"no history: {found.get('reason', '')}")
        else:
            self.term.out.write(_history_text(found.get("entries") or []))
        self.term.out.flush()

    async def _show(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            value = await queue.get()
            if value.get("type") == "permissionRequest":
                answering = asyncio.create_task(self._answer(value))
                self.answering.add(answering)
                answering.add_done_callback(self.answering.discard)
            self._show_one(value)

    def _show_one(self, value: dict[str, Any]) -> None:
        kind = value.get("type")
        if kind == "token":
            self.term.text(value.get("text", ""))
        elif kind == "toolResult":
            mark = "✗" if value.get("isError") else "✓"
            self.term.note(f"  {mark} {value.get('toolName')} {value.get('summary', '')}".rstrip())
        elif kind == "permissionResolved" and value.get("by") == "rule":
            self.term.note(f"  allowed by rule {value.get('rule', '')}".rstrip())
        elif kind == "permissionResolved" and value.get("rule"):
            self.term.note(f"  allowed always: {value['rule']}")
        elif kind == "permissionResolved" and value.get("by") == "cancel":
            self.term.note(f"  permission {value.get('decision')} by cancel")
        elif kind == "error":
            self.term.note(f"  error: {value.get('message')}")
        elif kind == "status" and value.get("state") == "working" and value.get("message"):
            # A notice (settings an untrusted folder left out, a conversation that
            # could not be resumed): the user should know.
            self.term.note(f"  note: {value['message']}")

    async def _answer(self, value: dict[str, Any]) -> None:
        answer: dict[str, Any] = {"requestId": value["requestId"]}
        if isinstance(value.get("questions"), list):
            answers = await self.term.answer_questions(value["questions"])
            answer |= {"decision": "allow", "answers": answers} if answers else {"decision": "deny"}
        elif value.get("toolName") == "ExitPlanMode":
            decision, reason, mode = await self.term.approve_plan(str(value.get("plan") or ""))
            answer |= {"decision": decision, "reason": reason}
            if mode:
                answer["permissionMode"] = mode
        else:
            always = value.get("allowAlways") or {}
            if isinstance(value.get("proposal"), dict):
                self.term.diff(value["proposal"])
            decision, reason = await self.term.ask(
                value.get("message") or value.get("toolName", "?"),
                f"{always.get('label', '')}: {always.get('rule', '')}" if always else "",
            )
            answer |= {"decision": decision, "reason": reason}
        try:
            await self.client.protocol.send_request_async(PERMISSION, answer)
        except JsonRpcException as exc:  # answered too late: the query already ended
            self.term.note(f"  {exc.message}")

    async def stop(self) -> None:
        if self.process is None:  # it never started
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.shutdown_async(None), 10)
            self.client.exit(None)
        if self.process is not None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
        self.stop_event.set()


def _history_text(entries: list[dict[str, Any]]) -> str:
    """`dave/history` entries as the chat shows a conversation (thinking left out)."""
    lines: list[str] = []
    for entry in entries:
        if entry.get("role") == "user":
            if lines:
                lines.append("")
            text = str(entry.get("text") or "")
            lines += [f"> {line}".rstrip() for line in text.splitlines() or [""]]
            if entry.get("images"):
                lines.append(f"> [{entry['images']} image(s)]")
            continue
        if entry.get("text"):
            lines.append(str(entry["text"]))
        for use in entry.get("toolUses") or []:
            if "summary" in use:
                mark = "✗" if use.get("isError") else "✓"
                lines.append(f"  {mark} {use.get('toolName')} {use.get('summary')}".rstrip())
            else:
                lines.append(f"  • {use.get('message')}")
    return "".join(line + "\n" for line in lines)


async def _chat(args: argparse.Namespace, term: Terminal) -> int:
    failures = 0
    if args.history and not args.session:
        raise ChatError("--history needs --session ID: the session whose conversation to print")
    with _demo(args) as demo:
        if args.demo:
            term.note(DEMO_NOTE)
        chat = ChatClient(args, term)
        try:
            await chat.start(_init_options(args, demo))
            if args.history:
                await chat.history()
                if not args.prompt:
                    return 0
            images = _images(args.image)
            async for prompt in _prompts(args, term):
                try:
                    result = await chat.query(prompt, images)
                    images = []  # the images go with the first prompt
                except ChatError as exc:
                    failures += 1
                    term.note(f"error: {exc}")
                    continue
                if args.json:
                    term.out.write(json.dumps(result) + "\n")
                    term.out.flush()
        finally:
            await chat.stop()
    return 1 if failures else 0


def run_chat(args: argparse.Namespace) -> int:
    term = Terminal(args, sys.stdout, sys.stderr)
    try:
        return asyncio.run(_chat(args, term))
    except ChatError as exc:
        term.note(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        term.note("interrupted")
        return 130
