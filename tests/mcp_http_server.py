"""A test MCP server over HTTP: `python mcp_http_server.py streamable-http|sse PORT FILE`
serves one tool, `touch`, which writes FILE (at /mcp, or /sse for sse), on the `mcp`
package's own server (MCPServer, uvicorn)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, cast

from mcp.server.mcpserver import MCPServer


def main() -> None:
    transport = cast(Literal["streamable-http", "sse"], sys.argv[1])
    port, marker = int(sys.argv[2]), Path(sys.argv[3])
    server = MCPServer("web")

    @server.tool(description="Write the marker file.")
    def touch() -> str:
        marker.write_text(f"the {transport} tool ran\n")
        return "touched"

    server.run(transport, host="127.0.0.1", port=port)  # type: ignore[call-overload]


if __name__ == "__main__":
    main()
