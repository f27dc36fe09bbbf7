"""The reference for start-up time: a bare pygls server that answers `initialize`
over stdio and does nothing else. Run as `python bench/bare_server.py`."""

from __future__ import annotations

from pygls.lsp.server import LanguageServer

server = LanguageServer("bare", "0")

if __name__ == "__main__":
    server.start_io()
