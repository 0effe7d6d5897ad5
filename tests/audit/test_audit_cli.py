"""`agentha audit` as a subprocess: reports, exit codes, production guard, one-line errors, and
no secret in any output."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from audit_helpers import GROUP, agentha, audit_inventory, insecure

pytestmark = pytest.mark.timeout(90)


def _run_dir(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder


def _outputs(result, out: Path) -> str:
    files = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    return result.stdout + result.stderr + files


def test_secure_group_exits_0_with_three_reports(fleet, tmp_path):
    inventory = audit_inventory(fleet, tmp_path)
    out = tmp_path / "reports"
    result = agentha("audit", "-c", str(inventory), "--group", GROUP, "--out", str(out),
                     env=fleet.secrets)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test/orders: 18 checks: 18 passed, 0 failed" in result.stdout
    assert "197 requests (cap 300)" in result.stdout
    folder = _run_dir(out)
    report = json.loads((folder / "audit.json").read_text())
    assert report["summary"] == {
        "groups": 1, "requests": 197, "pass": 18, "fail": 0, "error": 0, "skipped": 0,
    }  # fmt: skip
    assert report["caps"]["per_group_max"] == 300 and report["caps"]["rate_burst_max"] == 50
    suites = ET.parse(folder / "audit.xml").getroot()  # noqa: S314 (our own report)
    assert suites.get("tests") == "18" and suites.get("failures") == "0"
    assert "| list-orders | rate | pass |" in (folder / "audit.md").read_text()
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o077 == 0  # reports are readable by the owner only


def test_findings_exit_1_and_no_secret_reaches_any_output(fleet, tmp_path):
    insecure(fleet, "auth", "headers")
    inventory = audit_inventory(fleet, tmp_path)
    out = tmp_path / "reports"
    result = agentha("audit", "-c", str(inventory), "--group", GROUP, "--out", str(out),
                     env=fleet.secrets)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  list-orders auth: unauthenticated_accepted" in result.stdout
    report = json.loads((_run_dir(out) / "audit.json").read_text())
    assert report["summary"]["fail"] == 6
    junit = ET.parse(_run_dir(out) / "audit.xml").getroot()  # noqa: S314
    assert junit.get("failures") == "6"
    # The canaries: every secret of the fleet, the API key the audit sent on ~190 requests
    # among them, is in its environment only.
    text = _outputs(result, out)
    for name, value in fleet.secrets.items():
        assert value not in text, name


def test_production_needs_yes(fleet, tmp_path):
    inventory = audit_inventory(fleet, tmp_path)
    result = agentha("audit", "-c", str(inventory), "--group", "prod/orders",
                     "--out", str(tmp_path / "r"), env=fleet.secrets)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "agentha: error: environment 'prod' has the production profile: the audit sends "
        "unauthenticated, faulty and bursting requests to its APIs; add --yes to go ahead"
    ]
    assert not (tmp_path / "r").exists() and result.stdout == ""  # refused before any request


@pytest.mark.parametrize(
    ("args", "audit", "message"),
    [
        (("--group", "test/nope"), None, "--group 'test/nope': no such group"),
        (("--format", "json,pdf"), None, "--format 'json,pdf': expected a comma-separated list"),
        ((), {"ip_allow": ["127.0.0.0/8"], "audit_source": "127.0.0.2"},
         "audit_source 127.0.0.2 is inside ip_allow (127.0.0.0/8)"),
        ((), {"ip_allow": ["127.0.0.1"]}, "ip_allow and audit_source go together"),
        ((), {"input": {"path": "/api/orders/1"}}, "expected a path with one {param}"),
        ((), {"checks": {"speed": False}}, "expected one of 'auth', 'ip'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2(fleet, tmp_path, args, audit, message):
    inventory = audit_inventory(fleet, tmp_path, audit=audit)
    result = agentha("audit", "-c", str(inventory), *args, "--out", str(tmp_path / "r"),
                     env=fleet.secrets)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert "Traceback" not in result.stderr


def test_keep_days_prunes_old_runs(fleet, tmp_path):
    import os
    import time

    inventory = audit_inventory(fleet, tmp_path, audit={"checks": {"rate": False}})
    out = tmp_path / "reports"
    old = out / "audit-20200101T000000Z"
    old.mkdir(parents=True)
    (old / "audit.json").write_text("{}")
    stamp = time.time() - 40 * 86400
    os.utime(old, (stamp, stamp))
    result = agentha("audit", "-c", str(inventory), "--group", GROUP, "--out", str(out),
                     "--keep-days", "30", env=fleet.secrets)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"retention: deleted {old} (40 days old)" in result.stdout
    assert not old.exists() and len(list(out.iterdir())) == 1


def test_an_unreachable_entrypoint_is_exit_2(fleet, tmp_path):
    inventory = audit_inventory(fleet, tmp_path)
    data = yaml.safe_load(inventory.read_text())
    group = data["environments"][0]["groups"][0]
    group["entrypoint"] = "https://127.0.0.1:9"  # discard: nothing listens
    group["api_checks"] = [c for c in group["api_checks"] if "oauth2" not in c.get("auth", {})]
    inventory.write_text(yaml.safe_dump(data))
    result = agentha("audit", "-c", str(inventory), "--group", GROUP, "--out",
                     str(tmp_path / "r"), env=fleet.secrets)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ERROR list-orders auth: no usable answer" in result.stdout
