"""The header checks through a real HAProxy in front of test/orders' agents.

HAProxy itself refuses an oversized header and a control character in a header value (400)
before any agent sees them: a pass, as the client's view is what counts. Content-Length with
Transfer-Encoding it repairs (Transfer-Encoding wins) and closes the connection after the
answer, as RFC 9112 asks. A wrong Host it passes on, so the agent must refuse it.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import yaml
from audit_helpers import AUDIT, GROUP, agentha, insecure
from haproxy_helpers import front_certificate, haproxy_process
from load_helpers import free_port

from monitor.audit import AuditClass, Finding, Status, audit_group, select_groups
from monitor.inventory import load_inventory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture
def behind_haproxy(fleet, tmp_path: Path):
    """test/orders behind a real HAProxy; yields the inventory's (environment, group)."""
    front, front_ca = front_certificate(tmp_path)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(fleet.ca_file.read_bytes() + front_ca.read_bytes())
    port = free_port()
    data = yaml.safe_load((fleet.directory / "inventory.yaml").read_text())
    data["defaults"]["tls"]["ca_bundle"] = str(bundle)
    for env in data["environments"]:
        for group in env["groups"]:
            if f"{env['name']}/{group['name']}" != GROUP:
                continue
            gateway, entry = group["entrypoint"], f"https://127.0.0.1:{port}"
            group["entrypoint"] = entry
            group["audit"] = AUDIT
            for check in group["api_checks"]:
                oauth = check.get("auth", {}).get("oauth2")
                if oauth:
                    oauth["token_url"] = oauth["token_url"].replace(gateway, entry)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    config = tmp_path / "haproxy.cfg"
    made = agentha(
        "lb", "haproxy-config", "-c", str(inventory), "--group", GROUP,
        "--bind", f"127.0.0.1:{port}", "--cert", str(front), "-o", str(config),
        "--inter", "0.5", env=fleet.secrets,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with haproxy_process(config, dict(os.environ)):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1.2)  # two health checks: the agents are up
        yield select_groups(load_inventory(inventory, fleet.secrets), GROUP)[0]


def _attempts(audit) -> dict[str, set[int | None]]:
    out: dict[str, set[int | None]] = {}
    for result in audit.results:
        for attempt in result.attempts:
            out.setdefault(attempt.name, set()).add(attempt.status)
    return out


@pytest.mark.asyncio
async def test_header_checks_pass_through_haproxy(behind_haproxy):
    env, group = behind_haproxy
    audit = await audit_group(env, group, classes=(AuditClass.HEADERS,))
    assert [r.status for r in audit.results] == [Status.PASS] * 3, [
        str(a) for r in audit.results for a in r.attempts if not a.passed
    ] or [(r.id, r.attempts) for r in audit.results]
    statuses = _attempts(audit)
    # HAProxy refuses these itself; the agent refuses the wrong Host (421).
    assert statuses["oversized_header"] == {400} or statuses["oversized_header"] <= {400, 431}
    assert statuses["invalid_header_char"] == {400}
    assert statuses["wrong_host"] == {421}
    # HAProxy drops Content-Length, forwards the chunked body and closes the connection after
    # the agent's answer (RFC 9112 section 6.1): nothing can be smuggled, so it passes.
    # (create-order then gets 400 from the agent: the empty chunked body is no JSON.)
    assert statuses["conflicting_length"] == {200, 400}


@pytest.mark.asyncio
async def test_haproxy_passes_a_wrong_host_on_to_an_insecure_agent(fleet, behind_haproxy):
    insecure(fleet, "headers")
    env, group = behind_haproxy
    audit = await audit_group(env, group, classes=(AuditClass.HEADERS,))
    assert {r.finding for r in audit.results} == {Finding.FAULTY_HEADER_ACCEPTED}
    statuses = _attempts(audit)
    assert statuses["wrong_host"] <= {200, 201}
    # The faulty heads still never reach an agent: HAProxy's 400 stays a pass.
    assert statuses["oversized_header"] <= {400, 431}
    assert statuses["invalid_header_char"] == {400}
    passed = {a.name for r in audit.results for a in r.attempts if a.passed}
    assert passed == {"oversized_header", "invalid_header_char", "conflicting_length"}
