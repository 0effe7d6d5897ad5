"""Load tests: Locust load through a group's entrypoint, a per-second timeline, windowed verdicts.

Two kinds of modules live here, and this package imports neither on its own:

* pure ones, safe in any process (the command line, the chaos run controller): ``shapes``,
  ``thresholds``, ``timeline``, ``latency``, ``payloads``, ``plan``, ``run``, ``haproxy``;
* Locust ones, imported only inside the Locust process (gevent): ``locustfile``, ``users``,
  ``oauth``, ``timeline_plugin``.

See docs/load.md and docs/haproxy.md.
"""
