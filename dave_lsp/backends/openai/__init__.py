"""The OpenAI-compatible backend: a session over the chat completions API, its file and search
tools.
"""
