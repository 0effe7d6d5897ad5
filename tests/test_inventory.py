"""The inventory API: inheritance, resolved agents, secrets, problems and the JSON Schema."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import yaml

from monitor import yamlpos
from monitor.errors import InventoryError, MonitorError
from monitor.inventory import Inventory, inventory_json_schema, load_inventory
from monitor.inventory_file import InventoryFile
from monitor.problems import Finding, Problem
from monitor.secrets import Secret, policy_failures
from monitor.yamlpos import load_yaml

EXAMPLES = Path(__file__).parent.parent / "examples"
VALID = Path(__file__).parent / "inventory" / "valid"

ENV = {
    "TEST_HC_KEY": "Test-Health-Key-01!",
    "PROD_HC_KEY": "Prod-Health-Key-04!",
    "ORDERS_KEY": "Orders-Api-Key-07!",
}
EXAMPLE_ENV = {
    "TEST_HC_KEY": "Test-Health-Key-01!",
    "TEST_ORDERS_API_KEY": "Test-Orders-Key-02!",
    "TEST_INVOICES_CLIENT_SECRET": "Test-Invoices-Secret-03!",
    "PROD_HC_KEY": "Prod-Health-Key-04!",
    "PROD_ORDERS_API_KEY": "Prod-Orders-Key-05!",
    "PROD_INVOICES_CLIENT_SECRET": "Prod-Invoices-Secret-06!",
}


@pytest.fixture
def inheritance() -> Inventory:
    return load_inventory(VALID / "inheritance.yaml", ENV)


def test_agent_ids_and_urls(inheritance: Inventory) -> None:
    ids = [agent.id for _env, _group, agent in inheritance.agents()]
    assert ids == [
        "test/orders/orders-1",
        "test/orders/orders-2",
        "prod/orders/orders-1",
        "prod/orders/orders-2",
        "prod/orders/orders-3",
    ]
    agent = inheritance.agent("test/orders/orders-1")
    assert agent.status_url == "https://127.0.1.1:9443/frendsstatusinfo"
    assert agent.metrics_url == "https://127.0.1.1:9443/metrics"
    assert (agent.host, agent.port) == ("127.0.1.1", 9443)
    with pytest.raises(KeyError):
        inheritance.agent("test/orders/nope")
    assert [group.id for _env, group in inheritance.groups()] == ["test/orders", "prod/orders"]
    assert inheritance.summary() == "2 environments, 2 groups, 5 agents"


def test_defaults_chain_top_env_group_agent(inheritance: Inventory) -> None:
    test1 = inheritance.agent("test/orders/orders-1")
    test2 = inheritance.agent("test/orders/orders-2")
    prod1 = inheritance.agent("prod/orders/orders-1")
    prod3 = inheritance.agent("prod/orders/orders-3")
    # top level: metrics_path; environment: health key; group: status_path; agent: its own.
    assert test1.health_check_api_key is not None
    assert test1.health_check_api_key.name == "TEST_HC_KEY"
    assert prod1.health_check_api_key is not None
    assert prod1.health_check_api_key.name == "PROD_HC_KEY"
    assert test1.status_path == "/frendsstatusinfo"
    assert prod1.status_path == "/status"  # group defaults
    assert prod3.status_path == "/agent-status"  # the agent's own wins
    assert test2.metrics_path is None  # an explicit null overrides an inherited value
    assert test2.metrics_url is None
    assert test1.plain_http_ports == (80,)
    assert prod1.plain_http_ports == (80, 8080)  # lists are replaced, not merged


def test_tls_merged_key_by_key(inheritance: Inventory) -> None:
    test1 = inheritance.agent("test/orders/orders-1").tls
    assert test1.min_version == "1.2"  # built-in default
    assert test1.expiry_warning_days == 21  # environment
    assert test1.expiry_critical_days == 3  # top level
    prod3 = inheritance.agent("prod/orders/orders-3").tls
    assert prod3.min_version == "1.3"  # agent (an unquoted 1.3 in YAML)
    assert prod3.expiry_warning_days == 60  # group
    assert prod3.expiry_critical_days == 3  # top level
    assert prod3.server_name == "orders-3.internal.example.com"
    assert inheritance.agent("prod/orders/orders-1").tls.server_name == "127.0.2.1"


def test_ca_bundle_relative_to_the_inventory_file(inheritance: Inventory) -> None:
    tls = inheritance.agent("prod/orders/orders-1").tls
    assert tls.ca_bundle == (VALID / "ca.pem").absolute()
    assert inheritance.agent("test/orders/orders-1").tls.ca_bundle is None


def test_sources_say_where_a_setting_came_from(inheritance: Inventory) -> None:
    agent = inheritance.agent("prod/orders/orders-3")
    assert agent.sources["tls.min_version"] == (
        "environments",
        1,
        "groups",
        0,
        "agents",
        2,
        "tls",
        "min_version",
    )
    assert agent.sources["tls.expiry_critical_days"] == ("defaults", "tls", "expiry_critical_days")
    assert "allow_plaintext" not in agent.sources  # built-in default


def test_api_checks_and_groups(inheritance: Inventory) -> None:
    _env, group = next(inheritance.groups())
    assert group.min_healthy == 1
    assert group.entrypoint == "https://127.0.0.1:8443"
    (check,) = group.api_checks
    assert (check.name, check.method, check.path, check.expect_status) == (
        "list-orders",
        "GET",
        "/api/orders",
        200,
    )
    assert check.auth is not None and check.auth.api_key is not None
    assert check.auth.api_key.header == "X-Api-Key"
    assert check.auth.api_key.value.reveal() == ENV["ORDERS_KEY"]


def test_valid_file_has_no_findings(inheritance: Inventory) -> None:
    assert inheritance.findings == ()


def test_example_inventory_is_valid() -> None:
    inventory = load_inventory(EXAMPLES / "inventory.yaml", EXAMPLE_ENV)
    assert inventory.summary() == "2 environments, 4 groups, 9 agents"
    assert inventory.findings == ()
    prod = inventory.agent("prod/orders/orders-3")
    assert prod.tls.ca_bundle == Path("/etc/ssl/certs/ca-certificates.crt")
    assert prod.tls.expiry_warning_days == 45
    assert inventory.agent("prod/invoices/invoices-1").tls.min_version == "1.3"


def test_secret_never_shows_its_value() -> None:
    secret = Secret("API_KEY", "Very-Secret-Value-1!")
    shown = [str(secret), repr(secret), f"{secret}", f"{secret!r}", json.dumps({"k": str(secret)})]
    assert all("Very-Secret-Value-1!" not in text for text in shown)
    assert str(secret) == "${API_KEY}"
    assert secret.reveal() == "Very-Secret-Value-1!"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_secrets_stay_hidden_in_dumps_and_errors(inheritance: Inventory) -> None:
    doc = load_yaml((VALID / "inheritance.yaml").read_text())
    model = InventoryFile.model_validate(doc.data, context={"environ": ENV})
    dumped = model.model_dump_json()
    assert "${TEST_HC_KEY}" in dumped
    assert all(value not in dumped for value in ENV.values())
    assert all(value not in repr(inheritance) for value in ENV.values())
    with pytest.raises(InventoryError) as info:
        load_inventory(VALID / "inheritance.yaml", {**ENV, "ORDERS_KEY": "weak"})
    assert "weak" not in str(info.value).replace("weak-secret", "")
    assert "breaks the policy" in str(info.value)


def test_policy_failures_name_the_rules() -> None:
    assert policy_failures("Abcdefgh123!") == []
    assert policy_failures("abc") == [
        "fewer than 12 characters",
        "no upper case letter",
        "no digit",
        "no special character",
    ]


def test_problem_str_is_one_line() -> None:
    problem = Problem("bad-url", "not an absolute URL", "inv.yaml", "environments[0].url", 7)
    assert str(problem) == "inv.yaml:7: environments[0].url: not an absolute URL"
    assert str(Problem("empty-file", "the file is empty", "inv.yaml")) == (
        "inv.yaml: the file is empty"
    )
    assert isinstance(Finding("shared-secret", "m", "f"), Problem)


def test_inventory_error_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        "version: 1\n"
        "environments:\n"
        "  - name: Test\n"
        "    groups:\n"
        "      - name: orders\n"
        "        entrypoint: http//nope\n"
        "        agents:\n"
        "          - {name: a1, url: 'https://127.0.0.1:1', colour: red}\n"
    )
    with pytest.raises(InventoryError) as info:
        load_inventory(path, {})
    error = info.value
    assert isinstance(error, MonitorError)
    assert [(p.code, p.path, p.line) for p in error.problems] == [
        ("bad-name", "environments[0].name", 3),
        ("bad-url", "environments[0].groups[0].entrypoint", 6),
        ("unknown-key", "environments[0].groups[0].agents[0].colour", 8),
    ]
    assert str(error).endswith("(and 2 more)")
    assert error.__cause__ is None and error.__suppress_context__


def test_missing_file_is_an_inventory_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        load_inventory(tmp_path / "nope.yaml", {})
    (problem,) = info.value.problems
    assert problem.code == "unreadable"


def test_yaml_positions_and_duplicate_keys() -> None:
    doc = load_yaml("a: 1\nb:\n  - x: 1\n    y: 2\n  - x: 3\na: 2\n")
    assert doc.data == {"a": 2, "b": [{"x": 1, "y": 2}, {"x": 3}]}
    assert doc.line_of(("b", 0, "y")) == 4
    assert doc.line_of(("b", 1)) == 5
    assert doc.line_of(("b", 1, "missing")) == 5
    assert doc.duplicate_keys == [(("a",), 6, 1)]


def test_libyaml_and_the_python_parser_give_the_same_document() -> None:
    text = (EXAMPLES / "inventory.yaml").read_text() + "environments: []\n"  # and a duplicate
    fast, slow = (yamlpos._load(text, loader) for loader in (yamlpos._FAST, yaml.SafeLoader))
    assert yamlpos._FAST is not yaml.SafeLoader  # PyYAML here is built with libyaml
    assert (fast.data, fast.lines, fast.duplicate_keys) == (
        slow.data, slow.lines, slow.duplicate_keys,
    )  # fmt: skip
    assert fast.duplicate_keys


def test_a_yaml_error_is_told_by_the_python_parser_which_says_more() -> None:
    with pytest.raises(yamlpos.YamlSyntaxError) as info:
        load_yaml("a: 1\n\tb: 2\n")
    assert info.value.message.endswith("found character '\\t' that cannot start any token")
    assert info.value.line == 2


def test_yaml_aliases_do_not_loop() -> None:
    doc = load_yaml("base: &b {tls: {min_version: '1.3'}}\nother: *b\nself: &s [*s]\n")
    assert doc.data["other"] == {"tls": {"min_version": "1.3"}}


def test_json_schema_documents_the_format() -> None:
    schema = inventory_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"version", "defaults", "environments"}
    assert schema["required"] == ["version", "environments"]
    for name, definition in schema["$defs"].items():
        for field, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
    secret = schema["$defs"]["AgentSettings"]["properties"]["health_check_api_key"]
    assert any(s.get("pattern", "").startswith("^\\$\\{") for s in secret["anyOf"])


def test_example_keys_are_all_in_the_schema() -> None:
    """The example uses only documented keys (a light check without a schema validator)."""
    schema = inventory_json_schema()
    documented = {field for d in schema["$defs"].values() for field in d.get("properties", {})}
    documented |= set(schema["properties"])
    used: set[str] = set()

    def walk(node: object, in_body: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not in_body:
                    used.add(key)
                walk(value, in_body or key == "body")
        elif isinstance(node, list):
            for item in node:
                walk(item, in_body)

    walk(load_yaml((EXAMPLES / "inventory.yaml").read_text()).data)
    assert used <= documented, used - documented


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        "version: 1\n"
        "environments:\n"
        "  - name: test\n"
        "    groups:\n"
        "      - name: orders\n"
        "        entrypoint: https://127.0.0.1:8443\n"
        "        agents:\n"
        "          - &agent {name: orders-1, url: 'https://127.0.1.1:9443', metrics_path: /m}\n"
        "          - <<: *agent\n"
        "            name: orders-2\n"
        "            url: https://127.0.1.2:9443\n"
        "            colour: red\n"
    )
    with pytest.raises(InventoryError) as info:
        load_inventory(path, {})
    (problem,) = info.value.problems
    assert (problem.code, problem.line) == ("unknown-key", 12)
    path.write_text(path.read_text().replace("            colour: red\n", ""))
    inventory = load_inventory(path, {})
    assert inventory.agent("test/orders/orders-2").metrics_url == "https://127.0.1.2:9443/m"
