"""Per-environment secrets: read from environment variables or generated, checked by policy.

Values never leave this module except to the agents that check them, the worker pipe and
the 0600 ``secrets.env`` file; nothing here prints or logs a value.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fleetsim.errors import SecretPolicyError

MIN_LENGTH = 12
# Special characters for generated secrets: safe unquoted in a shell, in HTTP headers and
# in form bodies (no '+', '%', '&', '=').
_SPECIALS = "-_.:"
_ALPHABET = string.ascii_letters + string.digits + _SPECIALS


@dataclass(frozen=True)
class EnvSecrets:
    """The secrets of one environment and the variable names they are published under."""

    env: str
    client_id: str
    api_key: str
    client_secret: str
    hc_key: str | None  # None when the environment's agents do not require the key
    api_key_var: str
    client_secret_var: str
    hc_key_var: str | None

    def variables(self) -> dict[str, str]:
        """Variable name -> value, as written to secrets.env."""
        out = {self.api_key_var: self.api_key, self.client_secret_var: self.client_secret}
        if self.hc_key_var and self.hc_key:
            out[self.hc_key_var] = self.hc_key
        return out


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison that tolerates any header text (odd bytes just mismatch)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def variable_name(env: str, kind: str) -> str:
    """``FLEETSIM_<ENV>_<KIND>`` with the environment name upper-cased and ``-`` as ``_``."""
    return f"FLEETSIM_{env.upper().replace('-', '_')}_{kind}"


def policy_problem(value: str) -> str | None:
    """Why ``value`` breaks the secret policy, or None when it complies."""
    if len(value) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    if not all(33 <= ord(ch) <= 126 for ch in value):
        return "must be printable ASCII without spaces"
    checks = (
        (str.isupper, "an upper case letter"),
        (str.islower, "a lower case letter"),
        (str.isdigit, "a digit"),
        (lambda ch: not ch.isalnum(), "a special character"),
    )
    for test, what in checks:
        if not any(test(ch) for ch in value):
            return f"has no {what}"
    return None


def generate() -> str:
    """A random 24-character secret that satisfies the policy."""
    while True:
        value = "".join(secrets.choice(_ALPHABET) for _ in range(24))
        if policy_problem(value) is None:
            return value


def _read(var: str, environ: Mapping[str, str]) -> str:
    value = environ.get(var)
    if value is None or value == "":
        return generate()
    problem = policy_problem(value)
    if problem:
        raise SecretPolicyError(f"environment variable {var} breaks the secret policy: {problem}")
    return value


def load(
    envs: Iterable[tuple[str, bool]], environ: Mapping[str, str] | None = None
) -> dict[str, EnvSecrets]:
    """Secrets for each ``(environment, requires_health_check_key)``; no value in two envs."""
    environ = os.environ if environ is None else environ
    result: dict[str, EnvSecrets] = {}
    seen: dict[str, str] = {}
    for env, needs_hc_key in envs:
        hc_var = variable_name(env, "HC_KEY") if needs_hc_key else None
        item = EnvSecrets(
            env=env,
            client_id=f"fleetsim-{env}",
            api_key=_read(variable_name(env, "API_KEY"), environ),
            client_secret=_read(variable_name(env, "CLIENT_SECRET"), environ),
            hc_key=_read(hc_var, environ) if hc_var else None,
            api_key_var=variable_name(env, "API_KEY"),
            client_secret_var=variable_name(env, "CLIENT_SECRET"),
            hc_key_var=hc_var,
        )
        for var, value in item.variables().items():
            if value in seen:
                raise SecretPolicyError(
                    f"environment variables {seen[value]} and {var} hold the same value; "
                    "secrets must differ between environments and purposes"
                )
            seen[value] = var
        result[env] = item
    return result


_SAFE_VALUE = re.compile(r"^[A-Za-z0-9@%+=:,./_-]+$")


def shell_line(name: str, value: str) -> str:
    """``NAME=value`` for secrets.env, single-quoted only when the shell needs it."""
    if _SAFE_VALUE.match(value):
        return f"{name}={value}"
    return f"{name}='" + value.replace("'", "'\"'\"'") + "'"
