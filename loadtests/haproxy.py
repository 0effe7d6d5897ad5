"""An HAProxy configuration for one agent group: the recommended load balancer in front of it.

The configuration follows what a Frends agent group needs (docs/haproxy.md says why):

* TLS on both sides, 1.2 at least, modern ciphers; agent certificates verified against the
  inventory's CA and, where the agent has a host name, matched to it (``verifyhost``);
* a health check on the status endpoint over that TLS connection, with the
  ``health-check-api-key`` header from an environment variable that HAProxy expands at start
  (the secret never enters the file); only 200 is healthy, so a paused agent's 503 drains it;
* ``rise``/``fall`` like the monitor's, ``fastinter`` to confirm a failure quickly;
* ``retries`` with ``option redispatch``: a refused connection, an empty answer or a 503
  (a paused agent) is tried again on another agent, POST and PATCH only when the request
  never reached an agent.

Pure text generation from ``monitor.inventory``'s ``Group``: no Locust, no asyncio. It lives in
``loadtests`` because the load balancer is part of the path load goes through.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from loadtests.errors import LoadConfigError
from monitor.inventory import Agent, Group

# Mozilla "intermediate" server-side TLS 1.2 ciphers; TLS 1.3 suites are OpenSSL's defaults.
CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"


@dataclass(frozen=True)
class HealthCheck:
    """Timing of the agent health checks (seconds), HAProxy's own names."""

    inter: float = 2.0  # between checks while the agent's state is settled
    fastinter: float = 0.5  # between checks while a change is being confirmed
    downinter: float = 2.0  # between checks while the agent is down
    rise: int = 2  # successes that bring a down agent back
    fall: int = 2  # failures that take an agent out
    timeout: float = 3.0


@dataclass(frozen=True)
class Options:
    bind: str | None = None  # ADDRESS:PORT; default: the entrypoint's port on every address
    cert: str | None = None  # PEM with certificate chain and key for the entrypoint
    stats: str | None = None  # ADDRESS:PORT for the stats page and /metrics; None: none
    check: HealthCheck = field(default_factory=HealthCheck)
    retries: int = 2
    server_timeout: float = 60.0  # Frends processes behind an API trigger may take a while


@dataclass(frozen=True)
class HaproxyConfig:
    text: str
    environment: tuple[str, ...]  # variables HAProxy must have at start (names only)
    notes: tuple[str, ...]  # advice worth printing (never a secret)


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms" if seconds < 1 or seconds % 1 else f"{int(seconds)}s"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _same(group: Group, what: str, values: set[object]) -> None:
    if len(values) > 1:
        raise LoadConfigError(
            f"group {group.id}: its agents use different {what}; HAProxy checks every agent "
            "of a backend the same way, so give them one value"
        )


def haproxy_config(group: Group, options: Options | None = None) -> HaproxyConfig:
    """The configuration text for ``group``, and what its operator must know."""
    options = options or Options()
    entry = urlsplit(group.entrypoint)
    tls_front = entry.scheme == "https"
    port = entry.port or (443 if tls_front else 80)
    bind = options.bind or f":{port}"
    cert = options.cert or f"/etc/haproxy/certs/{group.environment}-{group.name}.pem"
    name = f"{group.environment}_{group.name}"
    agents = group.agents
    _same(group, "status paths", {a.status_path for a in agents})
    _same(
        group,
        "health-check keys",
        {a.health_check_api_key.name if a.health_check_api_key else None for a in agents},
    )
    key = agents[0].health_check_api_key
    check = options.check
    notes: list[str] = []

    send = f"http-check send meth GET uri {agents[0].status_path} ver HTTP/1.1"
    send += f" hdr Host {entry.hostname}"
    if key is not None:
        # HAProxy expands "${NAME}" from its environment when it starts.
        send += f' hdr health-check-api-key "${{{key.name}}}"'

    lines = [
        f"# HAProxy configuration for the Frends agent group {group.id}, written by",
        "# 'agentha lb haproxy-config' from the inventory: regenerate it rather than edit it.",
    ]
    if key is not None:
        lines.append(f"# Start (and check) HAProxy with {key.name} set in its environment: HAProxy")
        lines.append("# sends it as health-check-api-key; without it the file is refused.")
    lines += [
        "",
        "global",
        "    log stderr format raw local0 err",
        "    maxconn 4096",
        "    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
        f"    ssl-default-bind-ciphers {CIPHERS}",
        f"    ssl-default-bind-ciphersuites {CIPHERSUITES}",
        "    ssl-default-server-options ssl-min-ver TLSv1.2 no-tls-tickets",
        f"    ssl-default-server-ciphers {CIPHERS}",
        f"    ssl-default-server-ciphersuites {CIPHERSUITES}",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlog-normal",
        "    timeout connect 5s",
        "    timeout client 60s",
        f"    timeout server {_ms(options.server_timeout)}",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout queue 10s",
        f"    timeout check {_ms(check.timeout)}",
        "    # A failed attempt goes to another agent: refused, empty answer, or 503 (paused).",
        f"    retries {options.retries}",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response 503",
        "",
        f"frontend fe_{name}",
    ]
    if tls_front:
        lines.append(f"    bind {bind} ssl crt {cert} alpn h2,http/1.1")
        lines.append("    http-request set-header X-Forwarded-Proto https")
    else:
        lines.append(f"    bind {bind}")
        notes.append(
            f"the entrypoint {group.entrypoint} is plain HTTP (allowed by allow_plaintext): "
            "use https:// outside a lab"
        )
    lines += [
        "    option forwardfor",
        f"    default_backend be_{name}",
        "",
        f"backend be_{name}",
        "    balance roundrobin",
        "    # Only a running agent answers 200; a paused one answers 503 and is drained.",
        "    option httpchk",
        f"    {send}",
        "    http-check expect status 200",
        "    # Calls that may have reached an agent are not repeated unless they are idempotent.",
        "    http-request disable-l7-retry if METH_POST || { method PATCH }",
        (
            f"    default-server check inter {_ms(check.inter)} fastinter {_ms(check.fastinter)}"
            f" downinter {_ms(check.downinter)} rise {check.rise} fall {check.fall}"
            " init-addr last,libc,none"
        ),
    ]
    by_ip = []
    for agent in agents:
        line, verified_name = _server(agent)
        lines.append(line)
        if not agent.is_plaintext and not verified_name:
            by_ip.append(agent.name)
    if by_ip:
        notes.append(
            f"group {group.id}: {', '.join(by_ip)} reached by IP address: HAProxy verifies the "
            "certificate chain but cannot match an IP address; set tls.server_name to a DNS "
            "name in the certificate"
        )
    plain = [a.name for a in agents if a.is_plaintext]
    if plain:
        notes.append(f"group {group.id}: {', '.join(plain)} on plain HTTP: calls are not encrypted")
    if options.stats:
        lines += [
            "",
            "# Stats page and Prometheus metrics: keep this address on loopback or an admin net.",
            "frontend stats",
            f"    bind {options.stats}",
            "    http-request use-service prometheus-exporter if { path /metrics }",
            "    stats enable",
            "    stats uri /stats",
            "    stats refresh 10s",
        ]
    env = (key.name,) if key is not None else ()
    return HaproxyConfig("\n".join(lines) + "\n", env, tuple(dict.fromkeys(notes)))


def _server(agent: Agent) -> tuple[str, bool]:
    """The server line, and whether the agent's host name is verified."""
    line = f"    server {agent.name} {_address(agent.host, agent.port)}"
    if agent.is_plaintext:
        return line, False
    line += " ssl verify required"
    line += f" ca-file {agent.tls.ca_bundle}" if agent.tls.ca_bundle else " ca-file @system-ca"
    if agent.tls.min_version == "1.3":
        line += " ssl-min-ver TLSv1.3"
    server_name = agent.tls.server_name
    if server_name and not _is_ip(server_name):
        line += f" sni str({server_name}) verifyhost {server_name} check-sni {server_name}"
        return line, True
    return line, False
