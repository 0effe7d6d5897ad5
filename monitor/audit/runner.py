"""Run every audit check of a group within its request cap, one API check after another.

Checks run one at a time (never two bursts at once); within an API check the classes run in
``AuditClass`` order, rate last, and after a rate burst the API's bucket is given time to
refill before the next API check, so its 429s do not spill into the next check's answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from monitor.audit import limits
from monitor.audit.checks import CHECKS, Budget, CheckContext
from monitor.audit.raw import Header
from monitor.audit.result import AuditClass, AuditResult, Status
from monitor.audit.target import AuditTarget, audit_targets
from monitor.inventory import Environment, Group, Inventory
from monitor.probes.oauth import TokenError, fetch_token
from monitor.probes.target import ApiKeyCredentials, OAuth2Credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GroupAudit:
    """The audit of one group: every check class of every API check, and what it cost."""

    environment: str
    group: str
    production: bool
    results: tuple[AuditResult, ...]
    requests: int  # sent, OAuth2 token requests included
    request_cap: int
    started: float
    duration: float

    @property
    def id(self) -> str:
        return f"{self.environment}/{self.group}"

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def failed(self) -> bool:
        return any(r.status is Status.FAIL for r in self.results)

    @property
    def errored(self) -> bool:
        return any(r.status is Status.ERROR for r in self.results)


async def _credentials(
    target: AuditTarget, budget: Budget, per_request_s: float
) -> tuple[list[Header], str | None]:
    """The check's valid credential headers, or an error reason (fixed words)."""
    auth = target.api.auth
    if isinstance(auth, ApiKeyCredentials):
        return [(auth.header, auth.value)], None
    if isinstance(auth, OAuth2Credentials):
        if not budget.take(limits.TOKEN_REQUESTS):
            return [], "request cap reached"
        deadline = asyncio.get_running_loop().time() + per_request_s
        try:
            token = await fetch_token(auth, deadline)
        except TokenError as exc:
            return [], f"no access token ({exc.reason.value})"
        return [("Authorization", f"Bearer {token.access_token}")], None
    return [], None


async def audit_target(
    target: AuditTarget,
    budget: Budget,
    classes: Iterable[AuditClass] = tuple(AuditClass),
    per_request_s: float = limits.REQUEST_TIMEOUT_S,
) -> list[AuditResult]:
    """Every requested class of one API check, in ``AuditClass`` order."""
    wanted = set(classes)
    order = [c for c in AuditClass if c in wanted]
    credentials, problem = await _credentials(target, budget, per_request_s)
    ctx = CheckContext(target, target.endpoint(), credentials, budget, per_request_s)
    results = []
    for audit_class in order:
        if not target.enabled(audit_class.value):
            results.append(ctx.builder(audit_class).skip("switched off in the inventory"))
        elif problem is not None and audit_class is not AuditClass.AUTH:
            results.append(ctx.builder(audit_class).error(problem))
        else:
            results.append(await CHECKS[audit_class](ctx))
    return results


async def audit_group(
    environment: Environment,
    group: Group,
    *,
    request_cap: int = limits.MAX_GROUP_REQUESTS,
    classes: Sequence[AuditClass] = tuple(AuditClass),
    per_request_s: float = limits.REQUEST_TIMEOUT_S,
    sleep: Callable[[float], object] = asyncio.sleep,
) -> GroupAudit:
    """Audit one group within ``request_cap`` requests."""
    started, t0 = time.time(), time.monotonic()
    budget = Budget(request_cap)
    results: list[AuditResult] = []
    targets = audit_targets(environment.name, environment.is_production, group)
    for index, target in enumerate(targets):
        done = await audit_target(target, budget, classes, per_request_s)
        results += done
        rate = target.settings.rate_limit
        burst_sent = any(r.audit_class is AuditClass.RATE and r.requests for r in done)
        if rate is not None and burst_sent and index < len(targets) - 1:
            await sleep(limits.refill_wait(rate.rps, rate.burst))  # type: ignore[misc]
    return GroupAudit(
        environment=environment.name,
        group=group.name,
        production=environment.is_production,
        results=tuple(results),
        requests=budget.used,
        request_cap=request_cap,
        started=started,
        duration=time.monotonic() - t0,
    )


def select_groups(
    inventory: Inventory, wanted: str | None = None
) -> list[tuple[Environment, Group]]:
    """The groups to audit: one ``ENV/GROUP``, or all; ``KeyError`` for an unknown one."""
    groups = list(inventory.groups())
    if wanted is None:
        return groups
    chosen = [(env, group) for env, group in groups if group.id == wanted]
    if not chosen:
        raise KeyError(wanted)
    return chosen


async def audit_inventory(
    inventory: Inventory,
    groups: Sequence[tuple[Environment, Group]] | None = None,
    **options: object,
) -> list[GroupAudit]:
    """Audit the groups one after another (all of the inventory's by default)."""
    chosen = list(inventory.groups()) if groups is None else groups
    return [await audit_group(env, group, **options) for env, group in chosen]  # type: ignore[arg-type]


class AuditLoop:
    """The monitor's periodic audit: every group at a low interval, the latest kept.

    ``latest`` maps ``ENV/GROUP`` to its last ``GroupAudit``; ``on_audit`` is called after
    each group (to publish an event or an MQTT message). Production environments are left
    out unless ``include_production`` (the command's ``--yes``, as a setting).
    """

    def __init__(
        self,
        inventory: Inventory,
        interval_s: float = 3600.0,
        *,
        include_production: bool = False,
        on_audit: Callable[[GroupAudit], None] | None = None,
    ) -> None:
        self.inventory = inventory
        self.interval_s = interval_s
        self.include_production = include_production
        self.on_audit = on_audit
        self.latest: dict[str, GroupAudit] = {}

    def groups(self) -> list[tuple[Environment, Group]]:
        return [
            (env, group)
            for env, group in self.inventory.groups()
            if group.api_checks and (self.include_production or not env.is_production)
        ]

    async def run_once(self) -> list[GroupAudit]:
        done = []
        for env, group in self.groups():
            audit = await audit_group(env, group)
            self.latest[audit.id] = audit
            done.append(audit)
            if self.on_audit is not None:
                try:
                    self.on_audit(audit)
                except Exception as exc:  # a sink's fault must not stop the audits
                    log.error("audit sink failed: %s", type(exc).__name__)
        return done

    async def run(self) -> None:
        """Audit, wait ``interval_s``, repeat, until cancelled."""
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval_s)
