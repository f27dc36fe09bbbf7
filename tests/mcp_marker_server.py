"""A minimal stdio MCP server for the tests: one tool, `touch`, which writes the file
named on the command line. A test offers it to a session as a client's MCP server and
looks for the file: it exists only if the tool ran.

More words after the file name: `read-only` annotates the tool readOnlyHint; `child`
starts a process that outlives the server's stdin (its command line names the file),
as a server's helper can.

Newline-delimited JSON-RPC on stdin/stdout (the MCP stdio transport), with just
`initialize`, `tools/list` and `tools/call`: no dependency on an MCP library version.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TOOL = {
    "name": "touch",
    "description": "Write the marker file.",
    "inputSchema": {"type": "object", "properties": {}},
}


def answer(request: dict[str, Any], marker: Path) -> dict[str, Any] | None:
    method, msg_id = request.get("method"), request.get("id")
    if msg_id is None:
        return None  # a notification (notifications/initialized)
    if method == "initialize":
        result: dict[str, Any] = {
            "protocolVersion": request.get("params", {}).get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "marker", "version": "0"},
        }
    elif method == "tools/list":
        read_only = {"annotations": {"readOnlyHint": True}} if "read-only" in sys.argv else {}
        result = {"tools": [{**TOOL, **read_only}]}
    elif method == "tools/call":
        marker.write_text("the client's tool ran\n")
        result = {"content": [{"type": "text", "text": "touched"}]}
    else:
        return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": method}}
    return {"jsonrpc": "2.0", "id": msg_id, "result": result}


def main() -> None:
    marker = Path(sys.argv[1])
    if "child" in sys.argv:
        sleep = "import time; time.sleep(600)"
        subprocess.Popen([sys.executable, "-c", sleep, str(marker)], stdin=subprocess.DEVNULL)
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = answer(json.loads(line), marker)
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
