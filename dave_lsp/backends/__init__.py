"""Backends: the model clients a session actor owns (Claude Code, OpenAI-compatible)."""
