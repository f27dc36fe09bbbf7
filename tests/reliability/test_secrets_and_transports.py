"""Secrets never leave the server: the API key is in the server's environment and in
initializationOptions.env, the server logs at debug level to stderr and to the client,
and the CLI is wrapped by a script that prints its environment to stderr. And the
debugging transports bind loopback unless told otherwise, and say where."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import claude_agent_sdk

from tests.harness.processes import cli_processes
from tests.reliability.helpers import (
    FAKE_KEY,
    TALLY,
    RawServer,
    frame,
    server_options,
)

BUNDLED_CLI = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
OTHER_SECRET = "ghp_fakeTokenForTests0123456789"


def chatty_cli(folder: Path) -> Path:
    """A wrapper around the real CLI that prints the credentials it starts with to stderr,
    as debugging wrappers do, and refuses to start in a folder named fail-start."""
    script = folder / "claude-wrapper"
    script.write_text(
        "#!/bin/sh\n"
        'echo "wrapper: ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY GITHUB_TOKEN=$GITHUB_TOKEN" >&2\n'
        'case "$(/bin/pwd -P)" in *fail-start*) echo "wrapper: not here" >&2; exit 3;; esac\n'
        f'exec "{BUNDLED_CLI}" "$@"\n'
    )
    script.chmod(0o755)
    return script


def test_api_keys_never_reach_stderr_errors_or_log_messages(
    backend_env: dict[str, str], tmp_path: Path
) -> None:
    assert backend_env["ANTHROPIC_API_KEY"] == FAKE_KEY
    server_env = {**os.environ, "ANTHROPIC_API_KEY": FAKE_KEY, "GITHUB_TOKEN": OTHER_SECRET}
    server = RawServer(("--log-level", "debug"), env=server_env)
    try:
        workspace = tmp_path / "work"
        (tmp_path / "fail-start").mkdir()
        workspace.mkdir()
        options = server_options(
            {**backend_env, "GITHUB_TOKEN": OTHER_SECRET},
            workspace,
            logLevel="debug",
            claude={"cliPath": str(chatty_cli(tmp_path))},
        )
        server.initialize(options)
        # A normal turn, a tool turn, an API 401, a CLI that fails to start, a CLI killed.
        answer, _ = server.query("secret-1", "echo hello")
        assert answer["result"]["text"] == "You said: echo hello"
        msg_id, token = server.start_query("secret-1", "write s.txt x")
        request = server.wait_report(token, "permissionRequest")
        server.call("dave/permission", {"requestId": request["requestId"], "decision": "allow"})
        assert "result" in server.response(msg_id)
        answer, _ = server.query("secret-1", "error 401 invalid x-api-key")
        assert answer["error"]["code"] == -32803
        answer, _ = server.query("secret-2", "echo hi", cwd=str(tmp_path / "fail-start"))
        assert "Claude Code failed to start" in answer["error"]["message"]
        assert "ANTHROPIC_API_KEY=[redacted]" in answer["error"]["message"]
        msg_id, token = server.start_query("secret-1", "slow 200 50")
        server.wait_report(token, "token")
        for pid in cli_processes(server.pid):
            os.kill(pid, signal.SIGKILL)
        TALLY["faults injected"] += 3
        answer = server.response(msg_id, 10)
        assert "ended unexpectedly" in answer["error"]["message"]
        server.call("dave/deleteSession", {"sessionId": "secret-1"})
        assert server.stop() == 0
        logs = server.notifications("window/logMessage")
        assert logs  # the server did log to the client
        everything = (
            server.stderr_text(),
            repr(server.messages),
            repr(server.garbage),
        )
        for secret in (FAKE_KEY, OTHER_SECRET):
            for place, text in zip(("stderr", "stdout frames", "garbage"), everything, strict=True):
                assert secret not in text, f"{secret[:10]}… leaked to {place}"
        TALLY["secrets checked"] += 2
    finally:
        server.cleanup()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


# The socket transports' secret (tests/test_sockets.py tests the token itself).
SOCKET_TOKEN = "reliability-socket-token-0123"


def serve(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dave_lsp", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "DAVE_LSP_TOKEN": SOCKET_TOKEN},
    )


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if found := listening(port):
            return found
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_tcp_binds_loopback_by_default_says_so_and_serves(backend_env: dict[str, str]) -> None:
    port = free_port()
    proc = serve("--tcp", str(port))
    try:
        assert wait_listening(port, proc) == {"0100007F"}  # 127.0.0.1 only
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(
                frame(
                    {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {
                            "capabilities": {},
                            "initializationOptions": {"prewarm": 0, "token": SOCKET_TOKEN},
                        },
                    }
                )
            )
            received = b""
            while b'"experimental"' not in received:
                chunk = conn.recv(65536)
                assert chunk, received
                received += chunk
        # One connection: when it closes, the server ends.
        assert proc.wait(10) == 0
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read() == b""
        stderr = proc.stderr.read().decode()
        assert f"listening on tcp://127.0.0.1:{port} (debugging transport)" in stderr
    finally:
        proc.kill()
        proc.wait()


def test_tcp_binds_the_host_it_is_given_and_says_so() -> None:
    port = free_port()
    proc = serve("--tcp", f"0.0.0.0:{port}")
    try:
        assert wait_listening(port, proc) == {"00000000"}
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        assert f"listening on tcp://0.0.0.0:{port}" in proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()


def test_ws_binds_loopback() -> None:
    port = free_port()
    proc = serve("--ws", str(port))
    try:
        assert wait_listening(port, proc) == {"0100007F"}
        proc.terminate()
        proc.wait(10)
        assert proc.stderr is not None
        assert f"listening on ws://127.0.0.1:{port}" in proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()


def test_a_busy_port_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = serve("--tcp", str(port))
        assert proc.wait(15) != 0
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert str(port) in lines[-1] and "in use" in lines[-1], stderr
