"""Logging for the monitor: secrets redacted, agent content masked, production kept quiet.

- Every secret value the inventory resolved is replaced by ``***`` in every log line, whatever
  logger wrote it (defence in depth: no code path should log one in the first place).
- Content that came from an agent (a response body, a header) goes through
  ``mask_personal_data`` before it may reach a log or a report.
- Records about an environment with the ``production`` profile are kept only from ERROR up.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import TextIO

LOGGER_NAME = "monitor"  # every module here logs under monitor.<module>

_PERSONAL = [
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "<email>"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), "<account>"),
    (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "<card>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "<ip>"),
    (re.compile(r"\b(?:[0-9A-Fa-f]{1,4}:){3,7}[0-9A-Fa-f]{1,4}\b"), "<ip>"),
    (re.compile(r"\b\d{8,}\b"), "<number>"),  # account and customer numbers
    (re.compile(r"(?<![\w.])\+?\d[\d ()-]{6,}\d\b"), "<phone>"),
]


def mask_personal_data(text: str) -> str:
    """Mask e-mail addresses, IBAN-like account numbers, card numbers, IPs, phones, long numbers."""
    for pattern, replacement in _PERSONAL:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Replaces known secret values in the final message; set them with ``update``."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: list[str] = []

    def update(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            for secret in self._secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


class QuietProduction(logging.Filter):
    """Drops records below ERROR whose ``environment`` extra is a production environment."""

    def __init__(self) -> None:
        super().__init__()
        self.production: frozenset[str] = frozenset()

    def filter(self, record: logging.LogRecord) -> bool:
        env = getattr(record, "environment", None)
        return record.levelno >= logging.ERROR or env not in self.production


class JsonFormatter(logging.Formatter):
    _EXTRAS = ("environment", "group", "agent", "event")

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in self._EXTRAS:
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        return json.dumps(doc, separators=(",", ":"))


def setup_logging(
    level: str = "info", fmt: str = "text", stream: TextIO | None = None
) -> tuple[RedactSecrets, QuietProduction]:
    """Configure the monitor's loggers (on stderr by default); returns the filters to feed at
    (re)load."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    redact, quiet = RedactSecrets(), QuietProduction()
    handler.addFilter(quiet)
    handler.addFilter(redact)
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    return redact, quiet
