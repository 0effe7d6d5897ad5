"""Log hygiene: personal data masked, secrets redacted, production kept to errors."""

from __future__ import annotations

import io
import logging

import pytest

from monitor.logs import QuietProduction, RedactSecrets, mask_personal_data


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("mail jane.doe@example.com now", "mail <email> now"),
        ("card 4111 1111 1111 1111 used", "card <card> used"),
        ("from 192.168.10.20 via proxy", "from <ip> via proxy"),
        ("iban FI21 1234 5600 0007 85 ok", "iban <account> ok"),
        ("call +358 40 123 4567 today", "call <phone> today"),
        ("account 123456789012", "account <number>"),
        ("order 12345 of 3 items", "order 12345 of 3 items"),  # short numbers are kept
    ],
)
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_personal_data(text) == masked


def make_logger(*filters: logging.Filter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    for f in filters:
        handler.addFilter(f)
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def test_secrets_are_redacted_whatever_the_format() -> None:
    redact = RedactSecrets()
    redact.update(["Canary-Secr3t!value", "Canary"])
    logger, stream = make_logger(redact)
    logger.warning("key=%s", "Canary-Secr3t!value")
    logger.warning("prefix Canary-Secr3t!value suffix")
    assert stream.getvalue() == "key=***\nprefix *** suffix\n"


def test_production_environments_log_errors_only() -> None:
    quiet = QuietProduction()
    quiet.production = frozenset({"prod"})
    logger, stream = make_logger(quiet)
    logger.info("prod info", extra={"environment": "prod"})
    logger.warning("prod warning", extra={"environment": "prod"})
    logger.error("prod error", extra={"environment": "prod"})
    logger.info("test info", extra={"environment": "test"})
    logger.info("no environment")
    assert stream.getvalue().splitlines() == ["prod error", "test info", "no environment"]
