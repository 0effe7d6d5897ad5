"""The Prometheus rules and Grafana-managed alert rules: promtool, drift, runbooks, shape."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules" / "agentha.rules.yml"
UNIT_TESTS = sorted((ROOT / "prometheus" / "tests").glob("*.test.yml"))
GRAFANA_RULES = ROOT / "grafana" / "provisioning" / "alerting" / "agentha-alerts.yaml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
# The list, by alert name: each must exist.
REQUIRED = {
    "AgenthaAgentDown",
    "AgenthaAgentPausedTooLong",
    "AgenthaGroupNoSpare",
    "AgenthaGroupBelowRequired",
    "AgenthaEntrypointFailing",
    "AgenthaCertificateExpiringSoon",
    "AgenthaCertificateExpiryImminent",
    "AgenthaCertificateInvalid",
    "AgenthaLegacyTlsAccepted",
    "AgenthaPlaintextServed",
    "AgenthaApiUnauthenticatedAccepted",
    "AgenthaMonitorDown",
    "AgenthaProbeLagHigh",
    "AgenthaGroupErrorBudgetBurnFast",
    "AgenthaGroupErrorBudgetBurnSlow",
    "AgenthaChaosRunLost",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=50)


def alerts(document: dict) -> list[dict]:
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    assert len(UNIT_TESTS) >= 3
    done = promtool("test", "rules", *map(str, UNIT_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(UNIT_TESTS)


def test_every_alert_is_unit_tested_firing_after_its_for_and_not_before(generator) -> None:
    rules = {rule["alert"]: rule for rule in alerts(yaml.safe_load(RULES.read_text()))}
    assert set(rules) >= REQUIRED
    fired: dict[str, list[float]] = {name: [] for name in rules}
    quiet: dict[str, list[float]] = {name: [] for name in rules}
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                at = generator.seconds(check["eval_time"])
                (fired if check.get("exp_alerts") else quiet)[check["alertname"]].append(at)
    for name, rule in rules.items():
        wait = generator.seconds(rule["for"])
        assert fired[name], f"{name}: no unit test where it fires"
        # A quiet check inside the `for` before a firing one: pending is not firing.
        assert any(t - wait <= q < t for t in fired[name] for q in quiet[name]), (
            f"{name}: no unit test showing it does not fire before its for ({rule['for']})"
        )


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    sections = anchors(RUNBOOKS.read_text())
    for rule in alerts(yaml.safe_load(RULES.read_text())):
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path.endswith("/docs/runbooks.md"), url
        assert anchor in sections, f"{rule['alert']}: no section #{anchor} in docs/runbooks.md"
    for group in yaml.safe_load(GRAFANA_RULES.read_text())["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook_url"].partition("#")[2]
            assert anchor in sections, f"{rule['title']}: no section #{anchor}"


def test_generated_files_match_the_one_definition(generator) -> None:
    """The drift test: both rule files are exactly what the definition generates."""
    definition = generator.load_definition()
    assert RULES.read_text() == generator.dump(generator.prometheus_rules(definition))
    assert GRAFANA_RULES.read_text() == generator.dump(generator.grafana_rules(definition))
    assert generator.main(["--check"]) == 0


def test_grafana_rules_mirror_the_prometheus_alerts(generator) -> None:
    prometheus = {r["alert"]: r for r in alerts(yaml.safe_load(RULES.read_text()))}
    grafana = yaml.safe_load(GRAFANA_RULES.read_text())
    assert grafana["apiVersion"] == 1
    rules = [rule for group in grafana["groups"] for rule in group["rules"]]
    assert sorted(r["title"] for r in rules) == sorted(prometheus)
    uids = [rule["uid"] for rule in rules]
    assert len(set(uids)) == len(uids)
    source = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "agentha.yaml").read_text()
    )["datasources"][0]["uid"]
    for rule in rules:
        mirror = prometheus[rule["title"]]
        assert re.fullmatch(r"[a-z0-9-]{1,40}", rule["uid"]), rule["uid"]
        assert rule["for"] == mirror["for"] and rule["labels"] == mirror["labels"]
        assert rule["condition"] in {d["refId"] for d in rule["data"]}
        query = rule["data"][0]
        assert query["datasourceUid"] == source and query["model"]["instant"] is True
        assert "agentha:" not in query["model"]["expr"], "recording rules must be inlined"
        assert "$value " not in rule["annotations"]["description"] + " "


def test_grafana_expressions_parse_as_promql(generator, tmp_path: Path) -> None:
    grafana = yaml.safe_load(GRAFANA_RULES.read_text())
    rules = [
        {"record": f"grafana_{i}", "expr": rule["data"][0]["model"]["expr"]}
        for i, rule in enumerate(r for g in grafana["groups"] for r in g["rules"])
    ]
    path = tmp_path / "grafana-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_max_for_shortens_only_longer_waits(generator) -> None:
    rules = alerts(generator.prometheus_rules(generator.load_definition(), max_for="2s"))
    assert {rule["for"] for rule in rules} == {"2s"}
    assert generator.seconds("90s") == 90 and generator.seconds("4h") == 14400


def test_check_reports_drift_and_bad_definitions_in_one_line(
    generator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom, graf = tmp_path / "p.yml", tmp_path / "g.yaml"
    outs = ["--prometheus-out", str(prom), "--grafana-out", str(graf)]
    assert generator.main(outs) == 0
    assert generator.main([*outs, "--check"]) == 0
    prom.write_text(prom.read_text().replace("for: 1m", "for: 5m"))
    assert generator.main([*outs, "--check"]) == 1
    assert f"{prom}: differs" in capsys.readouterr().err
    bad = tmp_path / "alerts.yaml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n")
    assert generator.main(["--definition", str(bad), *outs]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "rule 'A'" in err and "expected exactly the keys" in err
    bad.write_text("- not a mapping\n")
    assert generator.main(["--definition", str(bad), *outs]) == 2
    assert "expected a mapping" in capsys.readouterr().err


def test_runbook_base_and_datasource_can_be_chosen(generator) -> None:
    definition = generator.load_definition()
    grafana = generator.grafana_rules(
        definition, runbook_base="https://wiki.example/runbooks", datasource_uid="mine"
    )
    rule = grafana["groups"][0]["rules"][0]
    assert rule["annotations"]["runbook_url"].startswith("https://wiki.example/runbooks#")
    assert rule["data"][0]["datasourceUid"] == "mine"
