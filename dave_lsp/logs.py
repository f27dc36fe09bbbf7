"""Logging: to stderr always, to the client as window/logMessage at its chosen level,
never to stdout, and never with a secret in it."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, ClassVar

from lsprotocol import types as lsp

_SECRETS: set[str] = set()
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|AUTH)", re.IGNORECASE)
LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def redact_values(env: dict[str, str]) -> None:
    """Remember the values of secret-looking variables so no log line can carry them."""
    for name, value in env.items():
        if SECRET_NAME.search(name):
            remember_secret(value)


def remember_secret(value: str) -> None:
    """No log line or error may carry `value` from now on. Values shorter than six
    characters are no secret worth hiding in every line (see `redact`'s `also`)."""
    if len(value) >= 6:
        _SECRETS.add(value)


def redact(text: str, *also: str) -> str:
    """`text` with every remembered secret replaced. `also` are one caller's secrets,
    hidden in its own messages only: a short one (a placeholder key such as "x") is
    matched as a whole word, so ordinary text around it stays readable."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    for secret in also:
        if len(secret) >= 8:
            text = text.replace(secret, "[redacted]")
        elif secret:
            text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", "[redacted]", text)
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _QuietExpectedErrors(logging.Filter):
    """pygls logs a traceback for every error response, expected ones too (a cancelled
    query, a bad param); keep those out of the log so real problems stand out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            from pygls.exceptions import JsonRpcException

            if isinstance(record.exc_info[1], JsonRpcException):
                return False
        return not record.getMessage().startswith(
            ("Sending data", "Cancel notification for", "Ignoring work done progress cancel")
        )


def setup_stderr_logging(level: str = "warning") -> None:
    redact_values(dict(os.environ))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("dave-lsp %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_QuietExpectedErrors())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level, logging.WARNING))
    logging.getLogger("pygls").setLevel(logging.WARNING)


class ClientLogHandler(logging.Handler):
    """Forwards log records to the client as window/logMessage."""

    TYPES: ClassVar[dict[int, lsp.MessageType]] = {
        logging.ERROR: lsp.MessageType.Error,
        logging.WARNING: lsp.MessageType.Warning,
        logging.INFO: lsp.MessageType.Info,
    }

    def __init__(self, server: Any, level: int) -> None:
        super().__init__(level)
        self._server = server
        self.setFormatter(RedactingFormatter("%(name)s: %(message)s"))
        self.addFilter(_QuietExpectedErrors())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kind = self.TYPES.get(record.levelno, lsp.MessageType.Log)
            if record.levelno >= logging.ERROR:
                kind = lsp.MessageType.Error
            self._server.window_log_message(
                lsp.LogMessageParams(type=kind, message=self.format(record))
            )
        except Exception:  # logging must never take the server down
            pass


def attach_client_log(server: Any, level: str) -> None:
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, ClientLogHandler)]
    numeric = LEVELS.get(level, logging.WARNING)
    root.addHandler(ClientLogHandler(server, numeric))
    root.setLevel(min(root.level, numeric))
