"""The Claude backend: a session over the Claude Agent SDK (session.py) and, beside it,
starting the CLI, warming it up, the permission bridge, translating its messages, its
context windows, its transcripts and the first message of a new conversation.
"""
