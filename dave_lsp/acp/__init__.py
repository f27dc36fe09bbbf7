"""`dave-lsp acp`: the Agent Client Protocol front end, on the same `SessionManager` as LSP.

- `transport.py`: newline-delimited JSON-RPC 2.0 over stdio (framing, dispatch, the
  agent's own requests to the client).
- `schema.py`: incoming params parsed with the `agent-client-protocol` package's schema
  types; the builders of outgoing messages.
- `outgoing.py`: what the agent sends, typed (a class per `session/update` body, answer
  and request of its own), and the one converter that writes them.
- `updates.py`: one prompt turn's events as `session/update`s (text coalesced), its
  permission requests as `session/request_permission`.
- `history.py`: a session's conversation (its backend's record) replayed for
  `session/load`.
- `agent.py`: the handlers (initialize, session/new, load, resume, list, prompt,
  cancel, set_mode, set_config_option, close, delete).
- `serve.py`: options from flags and a config file, the guarded stdout, the loop.
"""
