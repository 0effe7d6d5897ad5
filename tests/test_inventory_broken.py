"""Every broken inventory in tests/inventory/broken/ through the real command line.

The expectations live next to the files in expected.yaml: exit code, the one-line messages
(file, line, field path, what was expected), extra arguments and environment variables.
Whatever the case, no traceback and no secret value may reach the output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

BROKEN = Path(__file__).parent / "inventory" / "broken"
CASES: dict[str, dict] = yaml.safe_load((BROKEN / "expected.yaml").read_text())

CANARY = "Canary-Secr3t!value"


def run_check(file: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENTHA_")}
    environ.update({"AGENTHA_CANARY_SECRET": CANARY, **env})
    return subprocess.run(
        [sys.executable, "-m", "agentha", "config", "check", *args, file],
        cwd=BROKEN,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def test_corpus_is_complete() -> None:
    files = {p.name for p in BROKEN.glob("*.yaml")} - {"expected.yaml"}
    expected = {case.get("file", f"{name}.yaml") for name, case in CASES.items()}
    assert files - expected == set(), "broken inventories without an expectation"
    assert len(files) >= 30


@pytest.fixture(scope="module")
def results() -> dict[str, subprocess.CompletedProcess]:
    """All cases run at once: each is a fresh interpreter, so this is where the time goes."""

    def run(name: str) -> subprocess.CompletedProcess:
        case = CASES[name]
        return run_check(
            case.get("file", f"{name}.yaml"), case.get("args", []), case.get("env", {})
        )

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        return dict(zip(CASES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_inventory(name: str, results: dict[str, subprocess.CompletedProcess]) -> None:
    case = CASES[name]
    proc = results[name]
    output = proc.stdout + proc.stderr
    assert proc.returncode == case["exit"], output
    for text in as_list(case.get("stderr")):
        assert text in proc.stderr, f"missing in stderr: {text}\n--- stderr:\n{proc.stderr}"
    for text in as_list(case.get("stdout")):
        assert text in proc.stdout, f"missing in stdout: {text}\n--- stdout:\n{proc.stdout}"
    assert "Traceback" not in output
    for secret in [CANARY, *as_list(case.get("absent"))]:
        assert secret not in output
    # Every line is one message: errors on stderr are prefixed so they read as errors.
    for line in proc.stderr.splitlines():
        assert line.startswith(("error: ", "agentha: error: ")) or ": invalid, " in line, line
