"""`dave-lsp acp`: options from flags and a config file, the guarded stdout, the loop.

The options are LSP mode's `initializationOptions` (config.py), from a JSON config
file (`--config`, or `$DAVE_ACP_CONFIG`) with flags over it, so both front ends
validate them the same way. ACP has no initializationOptions of its own: the agent
is configured where it is started (Zed's `agent_servers` `args`, for example).

stdout is guarded as in LSP mode: the protocol writes to a private copy of fd 1, and
fd 1 itself becomes stderr, so a stray print or a child process cannot corrupt the
stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any, BinaryIO

log = logging.getLogger("dave_lsp.acp")

# Flag -> initializationOptions key; each flag's type is what the option takes.
_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--backend", "backend", str, "claude (default) or openai"),
    ("--model", "model", str, "the model for new sessions"),
    ("--permission-mode", "permissionMode", str, "default, acceptEdits, plan or bypassPermissions"),
    ("--cwd", "cwd", str, "the folder of sessions made without one"),
    ("--max-live-sessions", "maxLiveSessions", int, "backend processes alive at most (8)"),
    ("--prewarm", "prewarm", int, "spare clients kept connected (1)"),
    ("--idle-timeout-seconds", "idleTimeoutSeconds", float, "evict sessions idle this long (900)"),
    ("--state-dir", "stateDir", str, "where sessions are remembered ($XDG_STATE_HOME/dave-lsp)"),
    ("--max-queued-queries", "maxQueuedQueries", int, "prompts waiting per session (32)"),
    ("--request-timeout-seconds", "requestTimeoutSeconds", float, "fail a silent turn after this"),
    (
        "--permission-timeout-seconds",
        "permissionTimeoutSeconds",
        float,
        "deny a permission unanswered this long",
    ),
]


def add_acp_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="a JSON file of options, the keys of LSP mode's initializationOptions "
        "(default: $DAVE_ACP_CONFIG); flags override it",
    )
    for flag, key, kind, text in _FLAGS:
        parser.add_argument(flag, dest=f"acp_{key}", type=kind, metavar=key.upper(), help=text)
    parser.add_argument("--claude-cli-path", dest="acp_cliPath", help="the Claude Code CLI to run")
    parser.add_argument(
        "--env",
        dest="acp_env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for backend processes (repeatable)",
    )
    parser.add_argument(
        "--trust-folder",
        dest="acp_trust",
        action="append",
        default=[],
        metavar="DIR",
        help="trust DIR (and what is under it): its Claude Code project settings load, "
        "hooks and MCP servers included (repeatable; adds to the config's trustedFolders)",
    )
    parser.add_argument(
        "--log-level",
        dest="acp_log_level",
        choices=["error", "warning", "info", "debug"],
        help="how much goes to stderr (default: warning)",
    )


def raw_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options as initializationOptions: the config file, flags over it.
    SystemExit with a one-line message for a file that cannot be used."""
    from dave_lsp.config import env_pairs

    path = args.config or os.environ.get("DAVE_ACP_CONFIG")
    raw: dict[str, Any] = {}
    if path:
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as file:
                loaded = json.load(file)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"dave-lsp acp: cannot read the config file {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise SystemExit(f"dave-lsp acp: the config file {path} must hold a JSON object")
        raw.update(loaded)
    for _, key, _, _ in _FLAGS:
        value = getattr(args, f"acp_{key}")
        if value is not None:
            raw[key] = value
    if args.acp_cliPath:
        raw["claude"] = {**raw.get("claude", {}), "cliPath": args.acp_cliPath}
    try:
        env = env_pairs(args.acp_env, raw.get("env") or {})
    except ValueError as exc:
        raise SystemExit(f"dave-lsp acp: {exc}") from None
    if env:
        raw["env"] = env
    if args.acp_trust:
        # A flag's folder is the caller's, relative to where it was started.
        given = raw.get("trustedFolders", [])
        if isinstance(given, list):  # else the options' check names the config's mistake
            raw["trustedFolders"] = [*given, *(os.path.abspath(d) for d in args.acp_trust)]
    if args.acp_log_level:
        raw["logLevel"] = args.acp_log_level
    return raw


def run_acp(args: argparse.Namespace) -> int:
    from dave_lsp.config import parse_options
    from dave_lsp.logs import redact_values, setup_stderr_logging
    from dave_lsp.rpc import ParamsError

    raw = raw_options(args)
    setup_stderr_logging(raw.get("logLevel") or args.log_level)
    try:
        options, unknown = parse_options(raw)
    except ParamsError as exc:
        message = str(exc).replace("initializationOptions.", "option ")
        print(f"dave-lsp acp: {message}", file=sys.stderr)
        return 2
    if unknown:
        log.warning("ignoring unknown options: %s", ", ".join(unknown))
    redact_values(options.env)
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    code = asyncio.run(_serve(protocol_out, options))
    with contextlib.suppress(Exception):
        protocol_out.flush()
    logging.shutdown()
    # The stdin thread (a terminal's) may block on a read forever: leave without it.
    os._exit(code)


async def _serve(out: BinaryIO, options: Any) -> int:
    from dave_lsp.acp import extensions
    from dave_lsp.acp.agent import Agent
    from dave_lsp.acp.transport import Connection, read_lines
    from dave_lsp.pids import LIVE_PIDS, kill_pid

    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, main.cancel)  # type: ignore[union-attr]
    conn = Connection(out)
    agent = Agent(conn, options)
    extensions.register(conn, agent)  # session/fork, _dave/*
    try:
        await read_lines(conn.receive, out.fileno())
        log.info("stdin closed; closing every session")
    except asyncio.CancelledError:
        log.info("signal received; closing every session")
    finally:
        conn.close()
        try:
            await asyncio.wait_for(agent.close(), 5)
        except BaseException:
            log.warning("sessions did not close in time; killing their processes")
        for pid in list(LIVE_PIDS):
            kill_pid(pid)
    return 0
