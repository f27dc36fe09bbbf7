"""`dave-lsp chat`: a headless client for terminals, scripts and tests.

It starts the server over stdio like an editor does, sends prompts to one session
and streams the answer: the answer's text to stdout, everything else (tool results,
permission prompts, status, errors) to stderr, so `dave-lsp chat "..." > answer.txt`
keeps just the answer. It exits non-zero when a query fails.

This module is the command (its arguments, the options it starts the server with, the
prompts, the demo's scripted model); chat_client.py speaks to the server, and
chat_terminal.py to the user.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
from base64 import b64encode
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, get_args

from dave_lsp.backends import registry
from dave_lsp.config import env_pairs
from dave_lsp.lsp import chat_commands
from dave_lsp.lsp.chat_client import ChatClient, ChatError
from dave_lsp.lsp.chat_terminal import Terminal
from dave_lsp.lsp.protocol import PermissionMode

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
                    own = chat_commands.parse(prompt)
                    if own is not None:  # /rewind, /fork: the chat's own
                        await chat_commands.run(own, chat, term, args.json)
                        continue
                    result = await chat.query(prompt, images)
                    images = []  # the images go with the first prompt
                except (ChatError, chat_commands.UsageError) as exc:
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
