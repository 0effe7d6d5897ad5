"""API checks with placeholders are filled afresh for every call, as load runs fill them."""

from __future__ import annotations

import re

from monitor.probes.target import ApiCheckTarget
from monitor.targets import check_filler


def make(path: str, body: dict | None = None) -> ApiCheckTarget:
    method = "POST" if body is not None else "GET"
    return ApiCheckTarget("test/orders", "c", "127.0.0.1", 8443, path, method=method, body=body)


def test_constant_checks_need_no_filling() -> None:
    assert check_filler(make("/api/orders/1", {"qty": 1, "sku": "A-{{1}}"})) is None


def test_placeholders_in_path_and_body_are_filled_per_call() -> None:
    fill = check_filler(make("/api/orders/{int:1-50}", {"ref": "{uuid}", "qty": "{int:1-9}"}))
    assert fill is not None
    calls = [fill() for _ in range(20)]
    for target in calls:
        number = int(re.fullmatch(r"/api/orders/(\d+)", target.path).group(1))
        assert 1 <= number <= 50
        assert isinstance(target.body["qty"], int) and 1 <= target.body["qty"] <= 9
        assert target.group == "test/orders" and target.method == "POST"
    assert len({t.body["ref"] for t in calls}) == 20  # fresh values each call
