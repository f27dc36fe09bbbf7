"""The OpenAI-compatible backend: a session over the chat completions API (session.py), one
request and its streamed answer (stream.py), the tool loop's step (calls.py), the
conversation's messages (messages.py), reaching the endpoint (endpoint.py), its errors in
words (errors.py), the tools it runs itself (tools.py, search.py) and its history
(history.py).
"""
