"""Pieces of the audit without a fleet: judging, metric families, reports, retention, the
fleetsim guard and conditions."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from fleetsim.conditions import parse_patch
from fleetsim.gateway_guard import RateLimiter, faulty_head
from monitor.audit import limits
from monitor.audit.checks import expired_token, judge
from monitor.audit.exporters import audit_metric_families, snapshot_fragment
from monitor.audit.raw import Answer, _parse
from monitor.audit.reports import to_junit, to_markdown
from monitor.audit.result import Attempt, AuditClass, Finding, Outcome, ResultBuilder, Status
from monitor.audit.runner import GroupAudit
from monitor.retention import RetentionError, prune


def _ok(a: Answer) -> bool:
    return a.status in (401, 403)


@pytest.mark.parametrize(
    ("answer", "passed", "finding"),
    [
        (Answer(Outcome.ANSWERED, 401), True, None),
        (Answer(Outcome.ANSWERED, 200), False, Finding.UNAUTHENTICATED_ACCEPTED),
        (Answer(Outcome.ANSWERED, 502), False, Finding.SERVER_ERROR),
        (Answer(Outcome.ANSWERED, 302), False, Finding.UNEXPECTED_STATUS),
        (Answer(Outcome.TIMEOUT), False, None),
    ],
)
def test_judge(answer, passed, finding):
    attempt = judge("x", "401 or 403", answer, _ok, Finding.UNAUTHENTICATED_ACCEPTED)
    assert (attempt.passed, attempt.finding) == (passed, finding)


def test_the_worst_finding_is_the_checks_and_no_answer_is_an_error():
    build = ResultBuilder("test", "orders", "list", AuditClass.HEADERS)
    server = Attempt("a", "4xx", Outcome.ANSWERED, 500, finding=Finding.SERVER_ERROR)
    accepted = Attempt("b", "4xx", Outcome.ANSWERED, 200, finding=Finding.FAULTY_HEADER_ACCEPTED)
    result = build.finish([server, accepted])
    assert (result.status, result.finding) == (Status.FAIL, Finding.FAULTY_HEADER_ACCEPTED)
    silent = build.finish([Attempt("c", "4xx", Outcome.TIMEOUT)])
    assert (silent.status, silent.reason) == (Status.ERROR, "no usable answer")


def test_answer_head_parsing():
    assert _parse(b"HTTP/1.1 421 Misdirected\r\nConnection: close") == Answer(
        Outcome.ANSWERED, 421, True
    )
    assert _parse(b"SSH-2.0-OpenSSH") == Answer(Outcome.BAD_ANSWER)


def test_expired_token_is_a_jwt_in_the_past():
    import base64
    import json

    _header, claims, signature = expired_token(now=1_000_000).split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=="))
    assert decoded["exp"] < 1_000_000 and signature


def test_caps_add_up():
    assert limits.MAX_CHECK_REQUESTS == 1 + 4 + 1 + 7 + 4 + 10 + 4 + 50 == 81
    assert limits.rate_burst(150, 20) == 50 and limits.rate_burst(5, 10) == 20
    assert limits.refill_wait(1, 1000) == limits.MAX_REFILL_WAIT_S


def _audit() -> GroupAudit:
    build = ResultBuilder("test", "orders", "list-orders", AuditClass.AUTH)
    fail = build.finish(
        [Attempt("no_credentials", "401 or 403", Outcome.ANSWERED, 200,
                 finding=Finding.UNAUTHENTICATED_ACCEPTED)]
    )  # fmt: skip
    rate = ResultBuilder("test", "orders", "list-orders", AuditClass.RATE).finish(
        [Attempt("burst", "at least one 429", Outcome.ANSWERED, 429, passed=True, requests=50)]
    )
    skipped = ResultBuilder("test", "orders", "list-orders", AuditClass.IP).skip("not configured")
    return GroupAudit("test", "orders", False, (fail, rate, skipped), 51, 300, 1.7e9, 1.0)


def test_metric_families_have_bounded_labels():
    audits = [_audit()]

    class Fixed(Collector):
        def collect(self):
            return audit_metric_families(audits)

    registry = CollectorRegistry()
    registry.register(Fixed())
    labels = {"environment": "test", "group": "orders", "check": "list-orders"}
    assert registry.get_sample_value("agentha_audit_finding", {**labels, "class": "auth"}) == 1
    assert registry.get_sample_value("agentha_audit_finding", {**labels, "class": "rate"}) == 0
    assert registry.get_sample_value("agentha_audit_finding", {**labels, "class": "ip"}) is None
    group = {"environment": "test", "group": "orders"}
    assert registry.get_sample_value("agentha_audit_requests", group) == 51
    fragment = snapshot_fragment(audits)["test/orders"]
    assert fragment["checks"]["list-orders"]["auth"]["finding"] == "unauthenticated_accepted"
    assert fragment["failed"] and fragment["requests"] == 51


def test_reports_state_failures_and_caps():
    junit = to_junit([_audit()])
    assert 'failures="1"' in junit and 'skipped="1"' in junit and "<failure" in junit
    markdown = to_markdown([_audit()], "inventory.yaml")
    assert "at most 300 requests per group" in markdown
    assert "runbook: docs/runbooks.md#audit-auth-finding" in markdown


def test_retention_prunes_by_age_with_a_dry_run(tmp_path: Path):
    now = time.time()
    old, new, kept = tmp_path / "old", tmp_path / "new.json", tmp_path / "current"
    old.mkdir()
    (old / "audit.json").write_text("{}")
    new.write_text("{}")
    kept.mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    link = tmp_path / "link"
    link.symlink_to(outside)
    for path in (old, kept):
        os.utime(path, (now - 10 * 86400, now - 10 * 86400))
    os.utime(link, (now - 10 * 86400, now - 10 * 86400), follow_symlinks=False)
    dry = prune(tmp_path, 7, dry_run=True, now=now, keep=frozenset({"current"}))
    assert {p.path.name for p in dry} == {"old", "link"} and old.exists()
    done = prune(tmp_path, 7, now=now, keep=frozenset({"current"}))
    assert all(p.deleted for p in done)
    assert not old.exists() and not link.exists() and new.exists() and kept.exists()
    assert outside.exists()  # a link is removed as a link, never followed
    with pytest.raises(RetentionError, match="not a folder"):
        prune(new, 7)


def test_faulty_heads_and_the_rate_limiter():
    assert faulty_head(b"GET / HTTP/1.1\r\nX: a\x01b")
    assert faulty_head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked")
    assert faulty_head(b"GET / HTTP/1.1\r\nX: " + b"a" * 9000)
    assert not faulty_head(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb")
    limiter = RateLimiter(rate=1.0, burst=2)
    key = ("127.0.0.1", "GET", "/api/orders")
    assert limiter.take(key) is None and limiter.take(key) is None
    assert limiter.take(key) is not None
    assert limiter.take(("127.0.0.1", "GET", "/api/orders/1")) is None  # its own bucket


def test_audit_insecure_condition():
    assert parse_patch({"audit_insecure": ["rate", "auth", "rate"]}) == (
        {"audit_insecure": ("auth", "rate")}, None,
    )  # fmt: skip
    with pytest.raises(ValueError, match="audit_insecure"):
        parse_patch({"audit_insecure": ["speed"]})
