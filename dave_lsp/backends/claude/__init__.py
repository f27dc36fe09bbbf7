"""The Claude backend: a session over the Claude Agent SDK, and the transcript it starts a new
conversation with.
"""
