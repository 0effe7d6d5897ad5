"""The audit against the simulated fleet: secure agents pass every check, each fleetsim
switch makes exactly its class fail with the right finding, and the request count is bounded."""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_helpers import CLASSES, GROUP, audit_inventory, insecure

from monitor.audit import AuditClass, Finding, Status, audit_group, limits, select_groups
from monitor.inventory import load_inventory

pytestmark = pytest.mark.timeout(90)

# test/orders has three API checks: list-orders (GET, API key), get-order (GET, OAuth2) and
# create-order (POST, API key). Requests per class of the whole group:
EXPECTED_REQUESTS = {
    "auth": 3 * 4,
    "ip": 3 * 1,
    "methods": 3 * 3,  # DELETE, PUT, PATCH
    "headers": 3 * 4,
    "input": 2 + 2 + (1 + 2 + 1 + 2),  # traversals; malformed, 2 wrong types, oversized
    "rate": 3 * 50,  # min(150 * 2 + 20, 50)
}
TOKEN_REQUESTS = 1  # get-order's OAuth2 token


def _group(fleet, tmp_path: Path, **kwargs):
    inventory = load_inventory(audit_inventory(fleet, tmp_path, **kwargs), fleet.secrets)
    return select_groups(inventory, GROUP)[0]


@pytest.mark.asyncio
async def test_secure_agents_pass_every_check_within_the_stated_requests(fleet, tmp_path):
    env, group = _group(fleet, tmp_path)
    audit = await audit_group(env, group)
    assert {(r.check, r.audit_class.value): r.status for r in audit.results} == {
        (check, cls): Status.PASS
        for check in ("list-orders", "get-order", "create-order")
        for cls in CLASSES
    }, [(r.id, r.finding, r.reason, r.attempts) for r in audit.results if r.status.value != "pass"]
    per_class = {
        cls: sum(r.requests for r in audit.results if r.audit_class == cls) for cls in CLASSES
    }
    assert per_class == EXPECTED_REQUESTS
    assert audit.requests == sum(EXPECTED_REQUESTS.values()) + TOKEN_REQUESTS == 197
    assert audit.requests <= audit.request_cap == limits.MAX_GROUP_REQUESTS
    rate = [r for r in audit.results if r.audit_class is AuditClass.RATE]
    assert all(r.attempts[0].status == 429 for r in rate)


FINDINGS = {
    "auth": {Finding.UNAUTHENTICATED_ACCEPTED},
    "ip": {Finding.OUTSIDE_ADDRESS_ACCEPTED},
    "methods": {Finding.METHOD_ACCEPTED},
    "headers": {Finding.FAULTY_HEADER_ACCEPTED},
    # GET checks: the traversal crashes (500); the POST check accepts bad bodies (201).
    "input": {Finding.SERVER_ERROR, Finding.INVALID_INPUT_ACCEPTED},
    "rate": {Finding.NO_RATE_LIMIT},
}


@pytest.mark.asyncio
@pytest.mark.parametrize("audit_class", CLASSES)
async def test_each_switch_fails_exactly_its_class(fleet, tmp_path, audit_class):
    insecure(fleet, audit_class)
    env, group = _group(fleet, tmp_path)
    audit = await audit_group(env, group)
    failed = {r.audit_class.value for r in audit.results if r.status is Status.FAIL}
    assert failed == {audit_class}, [(r.id, r.finding) for r in audit.results]
    assert all(r.status is Status.PASS for r in audit.results if r.audit_class != audit_class)
    findings = {r.finding for r in audit.results if r.status is Status.FAIL}
    assert findings <= FINDINGS[audit_class] and findings
    # Every API check of the group shows it, not just one.
    assert sum(1 for r in audit.results if r.status is Status.FAIL) == 3
    if audit_class == "input":
        create = next(
            r for r in audit.results if r.check == "create-order" and r.audit_class == "input"
        )
        assert create.finding is Finding.INVALID_INPUT_ACCEPTED
        assert {a.name: a.status for a in create.attempts}["wrong_type_customer"] == 201
    if audit_class == "headers":
        statuses: dict[str, set[int | None]] = {}
        for r in audit.results:
            for a in r.attempts:
                statuses.setdefault(a.name, set()).add(a.status)
        # The gateway crashes on the faulty heads and serves the wrong Host.
        assert statuses["oversized_header"] == statuses["invalid_header_char"] == {500}
        assert statuses["conflicting_length"] == {500}
        assert statuses["wrong_host"] <= {200, 201}
