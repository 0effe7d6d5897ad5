"""`agentha monitor --audit-interval`: the audit runs inside the monitor, and its findings reach
the snapshot, /metrics (bounded labels), the group's findings and the MQTT group payload."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest
from audit_helpers import GROUP, audit_inventory, insecure
from monitor_process import monitor_process

from monitor import mqtt_payloads
from monitor.state import GroupSpec, StateStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
SCHEMA = Path(__file__).parents[2] / "monitor" / "schemas" / "group.schema.json"


def test_the_monitor_audits_and_reports_findings(fleet, tmp_path: Path) -> None:
    insecure(fleet, "methods")
    inventory = audit_inventory(fleet, tmp_path)
    with monitor_process(inventory, fleet.secrets, "--audit-interval", "3600") as monitor:
        deadline = time.monotonic() + 60
        while GROUP not in (monitor.snapshot().get("audit") or {}):
            assert time.monotonic() < deadline, "no audit in the snapshot"
            time.sleep(0.5)
        snapshot = monitor.snapshot()
        status, metrics = monitor.get("/metrics")
    audit = snapshot["audit"][GROUP]
    assert audit["requests"] <= audit["request_cap"] == 300
    assert audit["checks"]["list-orders"]["methods"]["finding"] == "method_accepted"
    assert audit["checks"]["list-orders"]["auth"]["status"] == "pass"
    findings = snapshot["groups"][GROUP]["findings"]
    assert findings["list-orders audit"] == ["method_accepted"]
    # Production is left out without --audit-production.
    assert not [g for g in snapshot["audit"] if g.startswith("prod/")]
    assert status == 200
    line = (
        'agentha_audit_finding{check="list-orders",class="methods",environment="test",'
        'group="orders"} 1.0'
    )
    assert line in metrics
    assert 'agentha_audit_finding{check="list-orders",class="auth"' in metrics
    for secret in fleet.secrets.values():
        assert secret not in json.dumps(snapshot) and secret not in metrics


def test_mqtt_group_payload_carries_group_findings() -> None:
    store = StateStore({"test/orders": GroupSpec(1, ("test/orders/a1",))})
    store.set_group_findings("test/orders", "list-orders audit", ["method_accepted"])
    store.set_group_findings("test/orders", "list-orders", ["unauthenticated_accepted"])
    payload = mqtt_payloads.group("m1", store, "test/orders")
    assert payload["findings"] == {
        "list-orders": ["unauthenticated_accepted"],
        "list-orders audit": ["method_accepted"],
    }
    jsonschema.validate(payload, json.loads(SCHEMA.read_text()))
