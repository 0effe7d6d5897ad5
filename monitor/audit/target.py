"""From the inventory to what the audit checks need: one target per API check.

The API check's own target (``monitor.targets.check_target``) gives the entrypoint, TLS
settings and credentials; the audit adds its settings (group's, overridden by the check's)
and the entrypoint's path prefix for the traversal path. Secrets stay in the credentials
objects, out of every ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from monitor.audit.raw import Endpoint
from monitor.inventory import ApiCheck, Group, check_audit
from monitor.inventory_file import AuditSettings
from monitor.probes.contexts import verified_context
from monitor.probes.target import ApiCheckTarget, host_header
from monitor.targets import check_filler, check_target


@dataclass(frozen=True, slots=True)
class AuditTarget:
    environment: str
    group: str
    production: bool
    api: ApiCheckTarget  # method, path (placeholders filled), body, credentials
    settings: AuditSettings
    prefix: str  # the entrypoint URL's own path, without a trailing '/'
    body: Any = field(default=None, repr=False)  # the check's JSON body, filled once

    @property
    def check(self) -> str:
        return self.api.check

    def enabled(self, audit_class: str) -> bool:
        return self.settings.checks.get(audit_class, True)  # type: ignore[call-overload]

    def endpoint(self) -> Endpoint:
        api = self.api
        context = (
            verified_context(api.ca_bundle, api.min_tls_version, True)
            if api.scheme == "https"
            else None
        )
        return Endpoint(
            host=api.host,
            port=api.port,
            ssl_context=context,
            server_name=api.expected_name,
            host_header=host_header(api.expected_name, api.port),
        )


def audit_targets(environment: str, production: bool, group: Group) -> list[AuditTarget]:
    """One target per API check of the group, in the inventory's order."""
    prefix = urlsplit(group.entrypoint).path.rstrip("/")
    targets = []
    for check in group.api_checks:
        targets.append(_target(environment, production, group, check, prefix))
    return targets


def _target(
    environment: str,
    production: bool,
    group: Group,
    check: ApiCheck,
    prefix: str,
) -> AuditTarget:
    api = check_target(group, check)
    fill = check_filler(api)  # synthetic values for the check's placeholders, as probes send
    if fill is not None:
        api = fill()
    return AuditTarget(
        environment=environment,
        group=group.name,
        production=production,
        api=api,
        settings=check_audit(group, check),
        prefix=prefix,
        body=api.body,
    )
