"""The LSP side of `dave-lsp chat`: one server process, started over stdio as an editor
starts it, and one session; a query's `$/progress` reports shown on the `Terminal` as
they come, its permission requests answered."""

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
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pygls.io_ import run_async
from pygls.lsp.client import LanguageClient

from dave_lsp import PROTOCOL_VERSION, __version__
from dave_lsp.lsp.chat_terminal import Terminal
from dave_lsp.lsp.protocol import HISTORY, PERMISSION, QUERY, REQUEST_CANCELLED, rpc_converter


class ChatError(Exception):
    """A failure to report as one line and exit 1."""


def _server_command(args: argparse.Namespace) -> list[str]:
    if args.server:
        import shlex

        return shlex.split(args.server)
    return [sys.executable, "-m", "dave_lsp"]


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

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """One request to the server; ChatError with its message when it fails."""
        try:
            return await self.client.protocol.send_request_async(method, params)
        except JsonRpcException as exc:
            raise ChatError(exc.message) from None

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
