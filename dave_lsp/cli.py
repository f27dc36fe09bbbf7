"""Command line: `dave-lsp` serves the protocol (stdio by default); `dave-lsp chat` is
the headless client; `dave-lsp acp` serves the Agent Client Protocol (dave_lsp/acp/).

Serving guards stdout: the protocol writer gets a private copy of file descriptor 1,
and fd 1 itself is pointed at stderr, so a stray print or a child process can never
corrupt the protocol stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import BinaryIO

from dave_lsp import __version__
from dave_lsp.stdio import FrameReader, PipeReader, ProtocolWriter

log = logging.getLogger("dave_lsp")


def _parse_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected [HOST:]PORT, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dave-lsp",
        description="Run Claude Code and other models for editors, over the language-server "
        "protocol (stdio by default).",
    )
    parser.add_argument("--version", action="version", version=f"dave-lsp {__version__}")
    parser.add_argument(
        "--tcp",
        type=_parse_address,
        metavar="[HOST:]PORT",
        help="serve one client over TCP, for debugging (binds 127.0.0.1 unless a host is "
        "given; the client presents the token the server prints where to find)",
    )
    parser.add_argument(
        "--ws",
        type=_parse_address,
        metavar="[HOST:]PORT",
        help="serve one client over WebSocket, for debugging (binds 127.0.0.1 unless given; "
        "a token as with --tcp)",
    )
    parser.add_argument(
        "--ws-allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="with --ws: a browser origin that may connect (it still needs the token); "
        "none by default",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["error", "warning", "info", "debug"],
        help="how much the server logs to stderr (default: warning)",
    )
    sub = parser.add_subparsers(dest="command")
    from dave_lsp.lsp.chat import add_chat_arguments

    add_chat_arguments(
        sub.add_parser(
            "chat",
            help="chat with a session from a terminal or a script",
            description="A headless dave-lsp client: starts the server over stdio, sends prompts, "
            "streams the answer.",
        )
    )
    from dave_lsp.acp.serve import add_acp_arguments

    add_acp_arguments(
        sub.add_parser(
            "acp",
            help="serve the Agent Client Protocol over stdio (Zed, Neovim, Emacs agents)",
            description="An ACP agent over stdio (newline-delimited JSON-RPC) on the same "
            "sessions as LSP mode. Options: a JSON config file with the keys of "
            "initializationOptions, and flags over it.",
        )
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "chat":
        from dave_lsp.lsp.chat import run_chat

        return run_chat(args)
    if args.command == "acp":
        from dave_lsp.acp.serve import run_acp

        return run_acp(args)
    return serve(args)


def serve(args: argparse.Namespace) -> int:
    from dave_lsp.logs import setup_stderr_logging

    setup_stderr_logging(args.log_level)
    if args.tcp or args.ws:
        return _serve_socket(args)
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    try:
        code = asyncio.run(_serve_stdio(protocol_out))
    except SystemExit as exc:  # pygls's `exit` handler calls sys.exit() inside the loop
        code = exc.code if isinstance(exc.code, int) else 0
    # The stdin reader thread may still block on a read that never returns (SIGTERM
    # with the editor alive); the sessions are closed, so leave without joining it.
    with contextlib.suppress(Exception):
        protocol_out.flush()
    logging.shutdown()
    os._exit(code)


async def _serve_stdio(protocol_out: BinaryIO) -> int:
    from pygls.io_ import StdinAsyncReader, run_async

    from dave_lsp.lsp.server import server

    main_task = asyncio.current_task()
    _cancel_on_signals()
    writer = ProtocolWriter(protocol_out, main_task.cancel)  # type: ignore[union-attr]
    server.protocol.set_writer(writer)
    reader = FrameReader(
        await PipeReader.for_stdin(protocol_out.fileno())
        or StdinAsyncReader(sys.stdin.buffer, server.thread_pool)
    )
    code = 0
    try:
        await run_async(
            stop_event=server.stop_event,
            reader=reader,
            protocol=server.protocol,
            logger=logging.getLogger("pygls"),
            error_handler=server.report_server_error,
        )
    except asyncio.CancelledError:
        log.info("signal received; closing every session")
    except (SystemExit, BrokenPipeError):
        pass
    finally:
        await _close_everything()
    return code


def _cancel_on_signals() -> None:
    """SIGTERM, SIGINT and SIGHUP cancel the running (main) task: its `finally` closes
    every session."""
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, main_task.cancel)  # type: ignore[union-attr]


async def _close_everything() -> None:
    from dave_lsp.lsp.server import server
    from dave_lsp.pids import LIVE_PIDS, kill_pid

    try:
        await asyncio.wait_for(server.close_sessions(), 5)
    except BaseException:
        log.warning("sessions did not close in time; killing their processes")
    for pid in list(LIVE_PIDS):
        kill_pid(pid)


def _serve_socket(args: argparse.Namespace) -> int:
    """--tcp / --ws: dave_lsp/lsp/sockets.py serves one client that holds the token."""
    host, port = args.tcp or args.ws
    kind = "tcp" if args.tcp else "ws"
    if args.ws_allow_origin and kind != "ws":
        print("dave-lsp: --ws-allow-origin goes with --ws", file=sys.stderr)
        return 2

    async def run() -> int:
        from dave_lsp.lsp import sockets

        _cancel_on_signals()
        try:
            return await sockets.serve(kind, host, port, args.ws_allow_origin)
        except asyncio.CancelledError:
            log.info("signal received; closing every session")
            return 0
        finally:
            await _close_everything()

    try:
        code = asyncio.run(run())
    except SystemExit as exc:  # pygls's `exit` handler calls sys.exit() inside the loop
        code = exc.code if isinstance(exc.code, int) else 0
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
