"""Target specs as written, and which agents they pick (deterministic with a seeded rng).

(Named test_target_selection, not test_targets: tests/monitor/test_targets.py exists and
test folders are not packages.)
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from chaos.errors import ExperimentError
from chaos.targets import ALL, TargetSpec, TargetSyntaxError, parse_targets, select_targets

pytestmark = pytest.mark.timeout(10)

GROUP = ["orders-1", "orders-2", "orders-3", "orders-4"]


# --- parse_targets ---


@pytest.mark.parametrize(
    ("written", "spec"),
    [
        (["orders-2", "orders-1"], TargetSpec(mode="names", names=("orders-2", "orders-1"))),
        ("one", TargetSpec(mode="one")),
        ("all", ALL),
        ({"random": 2}, TargetSpec(mode="random", count=2)),
        ({"percent": 50}, TargetSpec(mode="percent", percent=50.0)),
        ({"percent": 12.5}, TargetSpec(mode="percent", percent=12.5)),
        ({"percent": "25%"}, TargetSpec(mode="percent", percent=25.0)),
        ({"all-but": 1}, TargetSpec(mode="all_but", count=1)),
        ({"all-but": 0}, ALL),
    ],
)
def test_parse_targets(written: object, spec: TargetSpec) -> None:
    assert parse_targets(written) == spec


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("two", "unknown target 'two'"),
        ([], "the list is empty"),
        (["Orders-1"], "an agent name must be"),
        ([1], "an agent name must be"),
        (["a", "a"], "agent a is listed twice"),
        ({"random": 0}, "random: expected a whole number >= 1"),
        ({"random": True}, "random: expected a whole number >= 1"),
        ({"random": 1.5}, "random: expected a whole number >= 1"),
        ({"all-but": -1}, "all-but: expected a whole number >= 0"),
        ({"percent": 0}, "percent: expected a number above 0"),
        ({"percent": 101}, "percent: expected a number above 0"),
        ({"percent": "half"}, "percent: expected a number above 0"),
        ({"all_but": 1}, "unknown key 'all_but'"),
        ({"random": 1, "percent": 5}, "a mapping with 2 keys"),
        (3, "expected a list of agent names"),
        (None, "expected a list of agent names"),
    ],
)
def test_parse_targets_refuses(written: object, message: str) -> None:
    with pytest.raises(TargetSyntaxError) as info:
        parse_targets(written)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_spec_reads_back_for_people() -> None:
    assert str(TargetSpec(mode="names", names=("a", "b"))) == "a, b"
    assert str(TargetSpec(mode="random", count=2)) == "random 2"
    assert str(TargetSpec(mode="percent", percent=50)) == "50%"
    assert str(TargetSpec(mode="all_but", count=1)) == "all but 1"
    assert str(ALL) == "all"


# --- select_targets ---


def test_names_come_back_in_inventory_order() -> None:
    spec = TargetSpec(mode="names", names=("orders-3", "orders-1"))
    assert select_targets(spec, GROUP, random.Random(1)) == ["orders-1", "orders-3"]


def test_unknown_names_are_refused_on_one_line() -> None:
    spec = TargetSpec(mode="names", names=("orders-1", "orders-9", "billing-1"))
    with pytest.raises(ExperimentError) as info:
        select_targets(spec, GROUP, random.Random(1))
    assert str(info.value) == (
        "targets: no agent orders-9, billing-1 in the group; "
        "expected one of orders-1, orders-2, orders-3, orders-4"
    )


def test_one_is_one_agent_of_the_group_and_every_agent_can_be_picked() -> None:
    rng = random.Random(7)
    picks = Counter()
    for _ in range(400):
        (name,) = select_targets(TargetSpec(mode="one"), GROUP, rng)
        picks[name] += 1
    assert set(picks) == set(GROUP)
    assert min(picks.values()) > 50  # roughly uniform: 100 expected each


def test_same_seed_same_choice() -> None:
    spec = TargetSpec(mode="random", count=2)
    first = [select_targets(spec, GROUP, random.Random(42)) for _ in range(5)]
    assert all(choice == first[0] for choice in first)
    rng_a, rng_b = random.Random(3), random.Random(3)
    a = [select_targets(spec, GROUP, rng_a) for _ in range(20)]
    b = [select_targets(spec, GROUP, rng_b) for _ in range(20)]
    assert a == b
    assert len({tuple(x) for x in a}) > 1  # a run of choices is not one choice repeated


def test_random_picks_distinct_agents_in_order() -> None:
    rng = random.Random(5)
    for _ in range(50):
        chosen = select_targets(TargetSpec(mode="random", count=3), GROUP, rng)
        assert len(chosen) == 3 == len(set(chosen))
        assert chosen == [name for name in GROUP if name in chosen]


@pytest.mark.parametrize(
    ("size", "percent", "count"),
    [(4, 50, 2), (4, 10, 1), (4, 26, 2), (4, 100, 4), (3, 33.34, 2), (3, 100 / 3, 1), (10, 30, 3)],
)
def test_percent_rounds_up_and_takes_at_least_one(size: int, percent: float, count: int) -> None:
    agents = [f"a{i}" for i in range(size)]
    spec = TargetSpec(mode="percent", percent=percent)
    assert len(select_targets(spec, agents, random.Random(0))) == count


def test_all_but_spares_exactly_n() -> None:
    rng = random.Random(11)
    spared = Counter()
    for _ in range(200):
        chosen = select_targets(TargetSpec(mode="all_but", count=1), GROUP, rng)
        assert len(chosen) == 3
        (left,) = set(GROUP) - set(chosen)
        spared[left] += 1
    assert set(spared) == set(GROUP)  # the spared agent is chosen at random
    assert select_targets(ALL, GROUP, rng) == GROUP
    assert select_targets(TargetSpec(mode="all_but", count=4), GROUP, rng) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (TargetSpec(mode="random", count=5), "targets: random: 5 needs 5 agents but the group"),
        (TargetSpec(mode="all_but", count=5), "targets: all-but 5 in a group of 4 agents"),
    ],
)
def test_more_than_the_group_is_refused(spec: TargetSpec, message: str) -> None:
    with pytest.raises(ExperimentError) as info:
        select_targets(spec, GROUP, random.Random(0))
    assert str(info.value).startswith(message)
    assert "expected at most 4" in str(info.value)


def test_an_empty_group_has_nothing_to_pick() -> None:
    with pytest.raises(ExperimentError, match="the group has 0"):
        select_targets(TargetSpec(mode="one"), [], random.Random(0))
    with pytest.raises(ExperimentError, match=r"\(the group has no agents\)"):
        select_targets(TargetSpec(mode="names", names=("a",)), [], random.Random(0))
    assert select_targets(ALL, [], random.Random(0)) == []


def test_the_rng_is_the_only_source_of_chance() -> None:
    # The module never touches the global random state.
    random.seed(99)
    before = random.random()
    random.seed(99)
    select_targets(TargetSpec(mode="random", count=2), GROUP, random.Random(1))
    assert random.random() == before
