"""dave-lsp: a language-server plugin host that runs Claude Code and other models for editors."""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
