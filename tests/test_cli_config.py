"""`agentha config check` and `agentha config schema` as an operator runs them.

Each test runs the real command in a fresh interpreter: exit codes and the exact streams are
what operators and scripts see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "inventory.yaml"
EXAMPLE_ENV = {
    "TEST_HC_KEY": "Test-Health-Key-01!",
    "TEST_ORDERS_API_KEY": "Test-Orders-Key-02!",
    "TEST_INVOICES_CLIENT_SECRET": "Test-Invoices-Secret-03!",
    "PROD_HC_KEY": "Prod-Health-Key-04!",
    "PROD_ORDERS_API_KEY": "Prod-Orders-Key-05!",
    "PROD_INVOICES_CLIENT_SECRET": "Prod-Invoices-Secret-06!",
}

FINDING_ONLY = """\
version: 1
environments:
  - name: prod
    profile: production
    groups:
      - name: orders
        entrypoint: https://127.0.0.1:8443
        agents:
          - name: orders-1
            url: https://127.0.1.1:9443
"""


def agentha(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    environ = {k: v for k, v in os.environ.items() if k not in EXAMPLE_ENV}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agentha", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_example_passes_the_real_command() -> None:
    proc = agentha("config", "check", "examples/inventory.yaml", "--strict", env=EXAMPLE_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "examples/inventory.yaml: valid, 2 environments, 4 groups, 9 agents, 0 findings\n"
    )
    assert proc.stderr == ""


def test_example_without_its_variables_names_each_one() -> None:
    proc = agentha("config", "check", str(EXAMPLE))
    assert proc.returncode == 2
    err = proc.stderr.splitlines()
    assert len(err) == len(EXAMPLE_ENV) + 1
    for name in EXAMPLE_ENV:
        assert any(f"environment variable {name} is not set" in line for line in err)
    assert err[-1].endswith(f"invalid, {len(EXAMPLE_ENV)} errors")


def test_findings_exit_0_and_1_with_strict(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(FINDING_ONLY)
    proc = agentha("config", "check", "inv.yaml", cwd=tmp_path)
    assert proc.returncode == 0
    out = proc.stdout.splitlines()
    assert out[0].startswith("finding: inv.yaml:6: environments[0].groups[0].min_healthy: no spare")
    assert out[0].endswith("[no-spare-agent]")
    assert out[1] == "inv.yaml: valid, 1 environment, 1 group, 1 agent, 1 finding"
    assert proc.stderr == ""
    proc = agentha("config", "check", "--strict", "inv.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1].endswith("(--strict: findings fail the check)")


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    proc = agentha("config", "check", "missing.yaml", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "agentha: error: missing.yaml: cannot read the file: No such file or directory\n"
    )


def test_schema_is_json() -> None:
    proc = agentha("config", "schema")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "agentha inventory"


@pytest.mark.parametrize(
    "args", [["config", "--help"], ["config", "check", "--help"], ["config", "schema", "--help"]]
)
def test_help_has_examples(args: list[str]) -> None:
    proc = agentha(*args)
    assert proc.returncode == 0
    out = proc.stdout
    assert "agentha config" in out
    if args[1] != "--help":
        assert "examples:" in out


def test_config_without_subcommand_shows_help() -> None:
    proc = agentha("config")
    assert proc.returncode == 2
    assert "check" in proc.stderr
