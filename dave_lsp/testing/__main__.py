"""`python -m dave_lsp.testing [--port N]`: run the fake model server in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from dave_lsp.testing import FakeModelServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dave_lsp.testing", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    args = parser.parse_args(argv)
    server = FakeModelServer(port=args.port)
    try:
        server.start()
    except OSError as exc:
        print(f"fake model: cannot listen on port {args.port}: {exc}", file=sys.stderr)
        return 1
    print(
        f"fake model listening on {server.url} (scripted, not a real model)",
        file=sys.stderr,
        flush=True,
    )
    # SIGTERM (how scripts and CI stop it) ends it as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
