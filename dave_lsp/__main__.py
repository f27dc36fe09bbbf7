"""`python -m dave_lsp`: the same entry point as the `dave-lsp` console script."""

from dave_lsp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
