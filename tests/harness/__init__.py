"""Helpers the tests share: clients for LSP (lsp.py) and ACP (acp.py), a server on raw
pipes (raw.py), a headless Neovim (nvim.py) and what the plugin tests share (nvim_plugin.py),
and the process trees tests count (processes.py)."""
