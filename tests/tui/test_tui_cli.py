"""`agentha tui` arguments: bad input is one line naming the flag, never a traceback."""

from __future__ import annotations

import argparse

import pytest

from agentha import cmd_tui
from agentha.cli import Parser
from agentha.errors import CommandError

pytestmark = pytest.mark.timeout(10)


def parse(*argv: str) -> argparse.Namespace:
    parser = Parser(prog="agentha")
    cmd_tui.register(parser.add_subparsers(parser_class=Parser))
    return parser.parse_args(["tui", *argv])


def test_defaults() -> None:
    args = parse()
    assert args.monitor == "http://127.0.0.1:9731" and args.poll_interval == 1.0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://monitor:9731", "expected an http:// or https:// URL"),
        ("monitor:9731", "expected an http:// or https:// URL"),
        ("http://monitor:99999", "the port is not a number 0-65535"),
    ],
)
def test_bad_monitor_url(url: str, message: str) -> None:
    with pytest.raises(CommandError, match=message) as caught:
        cmd_tui.run(parse("--monitor", url))
    assert str(caught.value).startswith(f"--monitor {url!r}") and "\n" not in str(caught.value)


def test_unreadable_ca_file(tmp_path) -> None:
    with pytest.raises(CommandError, match=r"--ca-file .*: cannot load"):
        cmd_tui.run(parse("--ca-file", str(tmp_path / "missing.pem")))


def test_needs_a_terminal() -> None:
    # Under pytest stdin is not a terminal.
    with pytest.raises(CommandError, match="needs a terminal"):
        cmd_tui.run(parse())


@pytest.mark.parametrize("value", ["0", "fast", "-1"])
def test_bad_poll_interval(value: str, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("--poll-interval", value)
    assert caught.value.code == 2
    assert "--poll-interval" in capsys.readouterr().err
