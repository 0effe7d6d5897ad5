"""Secrets: references to environment variables, checked against the security policy.

A ``Secret`` holds the variable's name and its value; printing, ``repr``, f-strings and JSON
dumps show only ``${NAME}``. The value is reached by ``reveal()`` alone, at the point of use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

VAR_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
REFERENCE = re.compile(r"\$\{(" + VAR_NAME + r")\}")
MIN_LENGTH = 12
POLICY = (
    f"at least {MIN_LENGTH} characters with an upper case letter, a lower case letter, "
    "a digit and a special character"
)


class Secret:
    """A secret value and the environment variable it came from."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def reveal(self) -> str:
        """The secret value itself: call only where it is sent, never to print or log."""
        return self._value

    def same_value(self, other: Secret) -> bool:
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def fingerprint(self) -> str:
        """A stable digest to group equal values without holding them (not for display)."""
        return hashlib.sha256(self._value.encode()).hexdigest()

    def __str__(self) -> str:
        return f"${{{self.name}}}"

    def __repr__(self) -> str:
        return f"Secret('${{{self.name}}}')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self.name == other.name and self.same_value(other)

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self) -> Any:
        # Pickling would write the value out; secrets stay in the process that read them.
        raise TypeError("a Secret cannot be pickled")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(
            _validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: core_schema.CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": r"^\$\{" + VAR_NAME + r"\}$",
            "description": (
                "A reference ${NAME} to an environment variable holding the secret; "
                f"inline values are refused. Policy: {POLICY}."
            ),
        }


def policy_failures(value: str) -> list[str]:
    """The policy rules ``value`` breaks, in words (never the value)."""
    failed = []
    if len(value) < MIN_LENGTH:
        failed.append(f"fewer than {MIN_LENGTH} characters")
    if not any(c.isupper() for c in value):
        failed.append("no upper case letter")
    if not any(c.islower() for c in value):
        failed.append("no lower case letter")
    if not any(c.isdigit() for c in value):
        failed.append("no digit")
    if not any(not c.isalnum() and not c.isspace() for c in value):
        failed.append("no special character")
    return failed


def resolve(reference: object, environ: Mapping[str, str]) -> Secret:
    """Turn ``${NAME}`` into a ``Secret``; every refusal is a pydantic error without the input."""
    if not isinstance(reference, str):
        raise PydanticCustomError(
            "inline-secret",
            "inline secret values are not allowed; expected a reference like ${NAME} "
            "to an environment variable",
        )
    match = REFERENCE.fullmatch(reference.strip())
    if match is None:
        if "${" in reference or reference.startswith("$"):
            raise PydanticCustomError(
                "bad-reference",
                "malformed secret reference; expected exactly ${NAME} where NAME has letters, "
                "digits and '_' and does not start with a digit",
            )
        raise PydanticCustomError(
            "inline-secret",
            "inline secret values are not allowed; expected a reference like ${NAME} "
            "to an environment variable",
        )
    name = match.group(1)
    value = environ.get(name)
    if value is None:
        raise PydanticCustomError(
            "unset-variable",
            "environment variable {name} is not set",
            {"name": name},
        )
    if value == "":
        raise PydanticCustomError(
            "unset-variable",
            "environment variable {name} is empty",
            {"name": name},
        )
    failed = policy_failures(value)
    if failed:
        raise PydanticCustomError(
            "weak-secret",
            "secret ${{name}} breaks the policy: {failed}; expected {policy}",
            {"name": name, "failed": ", ".join(failed), "policy": POLICY},
        )
    return Secret(name, value)


def _validate(value: object, info: ValidationInfo) -> Secret:
    if isinstance(value, Secret):
        return value
    context = info.context or {}
    environ = context.get("environ")
    return resolve(value, os.environ if environ is None else environ)
