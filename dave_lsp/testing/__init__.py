"""A scripted, deterministic fake model server for the demo, the tests and the benchmarks.

`FakeModelServer` speaks the Anthropic Messages API (for the Claude Code CLI) and the
OpenAI chat-completions API on one loopback port; scripts.py lists its commands.
"""

from __future__ import annotations

from dave_lsp.testing.fake_server import FakeModelServer, RecordedRequest

__all__ = ["FakeModelServer", "RecordedRequest"]
