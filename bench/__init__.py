"""dave-lsp benchmarks: each figure of issue 9 as a ratio against a reference measured
in the same run, with the real bundled Claude Code CLI and the shipped fake model.

Run `python -m bench` (or `python -m bench --quick`); see bench/README.md.
"""
