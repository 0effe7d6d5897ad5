"""Whole-file rules of the inventory, and pydantic's errors told in the operator's words.

Single fields are checked by the models in ``monitor.inventory_file``; what needs more than one
field is here: unique names, ``min_healthy`` against the agent count, the plaintext policy after
inheritance, TLS expiry thresholds, CA bundles on disk, and secrets shared between environments.
Messages name what was expected and never hold a secret value (nor pydantic's ``input``).
"""

from __future__ import annotations

import difflib
import ipaddress
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel

from monitor.payloads import TemplateError, parse_body, parse_template
from monitor.problems import Loc, loc_to_path
from monitor.yamlpos import YamlDocument, YamlSyntaxError, load_yaml

if TYPE_CHECKING:
    from monitor.inventory import Agent, Environment, Group
    from monitor.inventory_file import ApiCheck, InventoryFile

LineOf = Callable[[Loc], "int | None"]


class Issue(NamedTuple):
    code: str
    loc: Loc
    message: str
    finding: bool = False
    line: int | None = None  # when the field path alone would point elsewhere (duplicate keys)


# --- pydantic errors -> issues ---

EXPECTED_TYPE = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def yaml_kind(value: object) -> str:
    """A value's YAML kind, for messages (the value itself is never shown)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "a value of another kind"


class FileUnusable(Exception):
    """The file cannot be read as a YAML mapping: ``code``, one-line ``message``, ``line``."""

    def __init__(self, code: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.line = code, message, line


def read_mapping_file(path: Path, expected: str) -> tuple[YamlDocument, list[Issue]]:
    """A UTF-8 YAML file whose top level is a mapping (``expected`` names its keys, for the
    messages), and an issue for each duplicate key in it. Raises ``FileUnusable``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise FileUnusable(
            "unreadable", f"cannot read the file: {exc.strerror or 'unknown error'}"
        ) from None
    except UnicodeDecodeError:
        raise FileUnusable("unreadable", "cannot read the file: it is not UTF-8 text") from None
    try:
        doc = load_yaml(text)
    except YamlSyntaxError as exc:
        raise FileUnusable("yaml-syntax", f"invalid YAML: {exc.message}", exc.line) from None
    if doc.data is None:
        raise FileUnusable(
            "empty-file", f"the file is empty; expected a mapping with {expected}", 1
        )
    if not isinstance(doc.data, dict):
        raise FileUnusable(
            "not-a-mapping",
            f"the top level is {yaml_kind(doc.data)}; expected a mapping with {expected}",
            doc.line_of(()),
        )
    duplicates = [
        Issue(
            "duplicate-key",
            key,
            f"duplicate key (first at line {first}); expected each key once, "
            "YAML would silently keep only the last",
            line=line,
        )
        for key, line, first in doc.duplicate_keys
    ]
    return doc, duplicates


def describe_error(err: Any, root: type[BaseModel]) -> Issue:
    """One pydantic error dict as an issue. ``err['input']`` is used for its kind only."""
    loc: Loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if "field" in ctx:  # a model-level rule that points at one of its fields
        loc = (*loc, ctx["field"])
    if kind == "missing":
        return Issue("missing-key", loc, "required key is missing")
    if kind == "extra_forbidden":
        return Issue("unknown-key", loc, _unknown_key(loc, root))
    if kind in EXPECTED_TYPE:
        got = yaml_kind(err.get("input"))
        hint = (
            " (remove the quotes)"
            if got == "a string" and kind in ("int_type", "bool_type")
            else ""
        )
        return Issue("wrong-type", loc, f"expected {EXPECTED_TYPE[kind]}, got {got}{hint}")
    if kind == "literal_error":
        if loc == ("version",):
            return Issue("bad-version", loc, "unsupported format version; expected 1")
        return Issue("bad-value", loc, f"expected one of {ctx.get('expected', '?')}")
    if kind == "greater_than_equal":
        return Issue("bad-value", loc, f"expected a number >= {ctx.get('ge')}")
    if kind == "less_than_equal":
        return Issue("bad-value", loc, f"expected a number <= {ctx.get('le')}")
    if kind == "too_short":
        return Issue("bad-value", loc, "expected at least one item")
    if kind == "string_too_short":
        return Issue("bad-value", loc, "expected a non-empty string")
    if "-" in kind:  # our own codes (PydanticCustomError): the message is already ours
        return Issue(kind, loc, err["msg"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    msg = msg.replace("Input should be", "expected", 1)
    return Issue("bad-value", loc, msg[:1].lower() + msg[1:])


def _unknown_key(loc: Loc, root: type[BaseModel]) -> str:
    model = _model_at(loc[:-1], root)
    if model is None:
        return "unknown key"
    allowed = list(model.model_fields)
    key = str(loc[-1])
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""  # drop_typo_twins relies on this
    return f"unknown key; {hint}expected one of: {', '.join(allowed)}"


def drop_typo_twins(issues: list[Issue]) -> list[Issue]:
    """Drop "X is missing" when a sibling unknown key is a typo of X: one mistake, one line."""
    meant = {
        (*issue.loc[:-1], issue.message.split("'")[1])
        for issue in issues
        if issue.code == "unknown-key" and "did you mean" in issue.message
    }
    return [i for i in issues if not (i.code == "missing-key" and i.loc in meant)]


def _model_at(loc: Loc, root: type[BaseModel]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


# --- whole-file rules ---


def check_inventory(
    model: InventoryFile, environments: Iterable[Environment], line_of: LineOf
) -> list[Issue]:
    """Every cross-field error and finding of a structurally valid inventory."""
    environments = tuple(environments)
    issues = _duplicate_names(model, line_of)
    issues += _duplicate_urls(environments, line_of)
    issues += _shared_secrets(model, environments, line_of)
    for e, env in enumerate(environments):
        for g, group in enumerate(env.groups):
            group_loc: Loc = ("environments", e, "groups", g)
            issues += _group_rules(env, group_loc, group)
            for a, agent in enumerate(group.agents):
                issues += _agent_rules(env, (*group_loc, "agents", a), agent)
    return issues


def _first_seen(
    names: list[str], loc_of: Callable[[int], Loc], what: str, line_of: LineOf
) -> list[Issue]:
    first: dict[str, int] = {}
    issues = []
    for index, name in enumerate(names):
        if name in first:
            line = line_of(loc_of(first[name]))
            issues.append(
                Issue(
                    "duplicate-name",
                    loc_of(index),
                    f"duplicate {what} name '{name}' (first at line {line}); expected unique names",
                )
            )
        else:
            first[name] = index
    return issues


def _duplicate_names(model: InventoryFile, line_of: LineOf) -> list[Issue]:
    issues = _first_seen(
        [env.name for env in model.environments],
        lambda i: ("environments", i, "name"),
        "environment",
        line_of,
    )
    for e, env in enumerate(model.environments):
        issues += _first_seen(
            [group.name for group in env.groups],
            lambda i, e=e: ("environments", e, "groups", i, "name"),
            "group",
            line_of,
        )
        for g, group in enumerate(env.groups):
            base: Loc = ("environments", e, "groups", g)
            issues += _first_seen(
                [agent.name for agent in group.agents],
                lambda i, base=base: (*base, "agents", i, "name"),
                "agent",
                line_of,
            )
            issues += _first_seen(
                [check.name for check in group.api_checks],
                lambda i, base=base: (*base, "api_checks", i, "name"),
                "api check",
                line_of,
            )
    return issues


def _normal_url(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def _duplicate_urls(environments: tuple[Environment, ...], line_of: LineOf) -> list[Issue]:
    first: dict[tuple[str, str, int, str], Loc] = {}
    issues = []
    for e, env in enumerate(environments):
        for g, group in enumerate(env.groups):
            for a, agent in enumerate(group.agents):
                loc: Loc = ("environments", e, "groups", g, "agents", a, "url")
                key = _normal_url(agent.url)
                if key in first:
                    where = loc_to_path(first[key])
                    issues.append(
                        Issue(
                            "duplicate-url",
                            loc,
                            f"same agent URL as {where} (line {line_of(first[key])}); "
                            "expected each agent at its own address",
                        )
                    )
                else:
                    first[key] = loc
    return issues


def _group_rules(env: Environment, loc: Loc, group: Group) -> list[Issue]:
    issues = []
    count = len(group.agents)
    if group.min_healthy > count:
        issues.append(
            Issue(
                "min-healthy",
                (*loc, "min_healthy"),
                f"min_healthy is {group.min_healthy} but the group has {count} "
                f"agent{'s' if count != 1 else ''}; expected at most {count}",
            )
        )
    elif env.is_production and count <= group.min_healthy:
        issues.append(
            Issue(
                "no-spare-agent",
                (*loc, "min_healthy"),
                f"no spare agent: min_healthy is {group.min_healthy} and the group has {count}; "
                "one agent offline makes the group unavailable (expected at least min_healthy + 1)",
                finding=True,
            )
        )
    for c, check in enumerate(group.api_checks):
        issues += _placeholder_issues((*loc, "api_checks", c), check)
        issues += _audit_issues(loc, c, group, check)
    if urlsplit(group.entrypoint).scheme == "http":
        if group.allow_plaintext:
            issues.append(
                Issue(
                    "plaintext-allowed",
                    (*loc, "entrypoint"),
                    "plain http:// entrypoint accepted because allow_plaintext is true; "
                    "traffic is unencrypted",
                    finding=True,
                )
            )
            for c, check in enumerate(group.api_checks):
                if check.auth is not None:
                    issues.append(
                        Issue(
                            "secret-over-plaintext",
                            (*loc, "api_checks", c, "auth"),
                            "credentials would travel over the plain http:// entrypoint; "
                            "expected an https:// entrypoint",
                        )
                    )
        else:
            issues.append(
                Issue(
                    "plaintext-refused",
                    (*loc, "entrypoint"),
                    "plain http:// is refused; expected https:// (or allow_plaintext: true in "
                    "the group's defaults, for a lab)",
                )
            )
    return issues


def _audit_issues(loc: Loc, index: int, group: Group, check: ApiCheck) -> list[Issue]:
    """The audit settings after the group's and the check's are merged must be usable."""
    from monitor.inventory import check_audit

    audit = check_audit(group, check)
    # Blame the check's own audit section when it has one, else the group's.
    where: Loc = (*loc, "api_checks", index, "audit") if check.audit else (*loc, "audit")
    issues = []
    if (audit.ip_allow is None) != (audit.audit_source is None):
        issues.append(
            Issue(
                "audit-ip",
                where,
                "ip_allow and audit_source go together: the IP filtering check sends from "
                "audit_source, an address outside ip_allow",
            )
        )
    elif audit.ip_allow is not None and audit.audit_source is not None:
        source = ipaddress.ip_address(audit.audit_source)
        inside = [n for n in audit.ip_allow if source in ipaddress.ip_network(n, strict=False)]
        if inside:
            issues.append(
                Issue(
                    "audit-ip",
                    (*where, "audit_source"),
                    f"audit_source {audit.audit_source} is inside ip_allow ({inside[0]}); "
                    "expected an address the API must refuse",
                )
            )
    if audit.methods_not_allowed and check.method in audit.methods_not_allowed:
        issues.append(
            Issue(
                "audit-methods",
                (*where, "methods_not_allowed"),
                f"the check's own method {check.method} is listed as not allowed; "
                "expected only methods the API must refuse",
            )
        )
    return issues


def _placeholder_issues(loc: Loc, check: ApiCheck) -> list[Issue]:
    """Placeholders ({int:1-50}, {uuid}...) in a check's path and body must be ones we fill."""
    issues = []
    for field, parse, value in (
        ("path", parse_template, check.path),
        ("body", parse_body, check.body),
    ):
        if value is None:
            continue
        try:
            parse(value, field)
        except TemplateError as exc:
            issues.append(Issue("bad-placeholder", (*loc, field), str(exc).split(": ", 1)[1]))
    return issues


def _agent_rules(env: Environment, loc: Loc, agent: Agent) -> list[Issue]:
    issues = []
    src = agent.sources
    if agent.is_plaintext:
        if agent.allow_plaintext:
            issues.append(
                Issue(
                    "plaintext-allowed",
                    (*loc, "url"),
                    "plain http:// accepted because allow_plaintext is true "
                    f"(set at {loc_to_path(src['allow_plaintext'])}); traffic is unencrypted",
                    finding=True,
                )
            )
            if agent.health_check_api_key is not None:
                issues.append(
                    Issue(
                        "secret-over-plaintext",
                        (*loc, "url"),
                        "health_check_api_key would travel over plain http://; "
                        "expected an https:// URL",
                    )
                )
        else:
            issues.append(
                Issue(
                    "plaintext-refused",
                    (*loc, "url"),
                    "plain http:// is refused; expected https:// (or allow_plaintext: true, "
                    "for a lab agent)",
                )
            )
    if env.is_production and agent.allow_plaintext:
        issues.append(
            Issue(
                "plaintext-in-production",
                src.get("allow_plaintext", loc),
                f"allow_plaintext is true in production environment '{env.name}'; "
                "expected https only in production",
                finding=True,
            )
        )
    tls = agent.tls
    if tls.expiry_critical_days >= tls.expiry_warning_days:
        blamed = [
            src[k] for k in ("tls.expiry_critical_days", "tls.expiry_warning_days") if k in src
        ]
        issues.append(
            Issue(
                "expiry-order",
                max(blamed, key=len) if blamed else (*loc, "tls"),
                f"expiry_critical_days ({tls.expiry_critical_days}) must be less than "
                f"expiry_warning_days ({tls.expiry_warning_days}) after inheritance",
            )
        )
    if tls.ca_bundle is not None and not tls.ca_bundle.is_file():
        state = "is not a file" if tls.ca_bundle.exists() else "does not exist"
        issues.append(
            Issue(
                "ca-bundle-missing",
                src.get("tls.ca_bundle", (*loc, "tls")),
                f"CA bundle {tls.ca_bundle} {state}; expected a PEM file (a relative path is "
                "relative to the inventory file's folder)",
            )
        )
    return issues


def _shared_secrets(
    model: InventoryFile, environments: tuple[Environment, ...], line_of: LineOf
) -> list[Issue]:
    # fingerprint -> environment -> (first field, variable name); values are never kept here.
    uses: dict[str, dict[str, tuple[Loc, str]]] = {}

    def use(secret: Any, env: str, loc: Loc) -> None:
        if secret is not None:
            uses.setdefault(secret.fingerprint(), {}).setdefault(env, (loc, secret.name))

    for e, env in enumerate(environments):
        for g, group in enumerate(env.groups):
            for agent in group.agents:
                src = agent.sources.get("health_check_api_key")
                if src is not None:
                    use(agent.health_check_api_key, env.name, src)
            for c, check in enumerate(model.environments[e].groups[g].api_checks):
                auth_loc: Loc = ("environments", e, "groups", g, "api_checks", c, "auth")
                if check.auth and check.auth.api_key:
                    use(check.auth.api_key.value, env.name, (*auth_loc, "api_key", "value"))
                if check.auth and check.auth.oauth2:
                    secret = check.auth.oauth2.client_secret
                    use(secret, env.name, (*auth_loc, "oauth2", "client_secret"))
    issues = []
    for by_env in uses.values():
        if len(by_env) < 2:
            continue
        (env1, (loc1, var1)), (env2, (loc2, var2)) = list(by_env.items())[:2]
        if loc1 == loc2:
            envs = list(by_env)
            names = ", ".join(envs[:-1]) + " and " + envs[-1]
            message = (
                f"secret ${{{var1}}} is inherited by environments {names}; "
                "expected a separate secret per environment"
            )
        else:
            message = (
                f"secret ${{{var2}}} (environment {env2}) has the same value as ${{{var1}}} at "
                f"{loc_to_path(loc1)} (line {line_of(loc1)}, environment {env1}); "
                "expected a separate secret per environment"
            )
        issues.append(Issue("shared-secret", loc2, message, finding=True))
    return issues
