"""Command-line options of the harness, added to Locust's parser; each has an environment variable and works in locust.conf.

Must not import locust: it receives the parser. Keep it free of side effects, because Locust calls
`init_command_line_parser` again on every GET of the web UI page.
"""
from __future__ import annotations

from typing import Any

# (flag, env var, kwargs). Defaults are the values a run gets when nothing is set.
OPTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("--chaos-plan", "CHAOS_PLAN", dict(default="", help="Scenario file (YAML) with targets, probes, faults and SLOs. Empty: load only.")),
    ("--chaos-dry-run", "CHAOS_DRY_RUN", dict(action="store_true", default=False, help="Print the timeline and touch nothing.")),
    ("--chaos-report-dir", "CHAOS_REPORT_DIR", dict(default="reports", help="Where the JSON, JUnit XML, Markdown and HTML reports go.")),
    ("--chaos-allow", "CHAOS_ALLOW", dict(default="", help="Extra allowed targets, comma-separated: container names or hosts.")),
    ("--chaos-journal", "CHAOS_JOURNAL", dict(default=".run/chaos-journal.json", help="Revert journal: faults injected and not yet reverted.", include_in_web_ui=False)),
    ("--chaos-metrics-host", "CHAOS_METRICS_HOST", dict(default="127.0.0.1", help="Address of the Prometheus /metrics exporter.", include_in_web_ui=False)),
    ("--chaos-metrics-port", "CHAOS_METRICS_PORT", dict(type=int, default=9646, help="Port of the Prometheus /metrics exporter; 0 turns it off.", include_in_web_ui=False)),
    ("--chaos-prometheus-url", "CHAOS_PROMETHEUS_URL", dict(default="", help="Prometheus whose /api/v1/alerts the alert SLOs read. Empty: alert SLOs are not verifiable.")),
    ("--chaos-no-watchdog", "CHAOS_NO_WATCHDOG", dict(action="store_true", default=False, help="Do not start the watchdog that reverts faults if Locust dies.", include_in_web_ui=False)),
    ("--kafka-bootstrap", "KAFKA_BOOTSTRAP", dict(default="127.0.0.1:19092", help="Kafka bootstrap servers for the Kafka user, probes and ledger audit.")),
    ("--kafka-topic", "KAFKA_TOPIC", dict(default="events", help="Topic the Kafka user produces to and the ledger audits.")),
]


def add_options(parser: Any) -> None:
    """Add every harness option to Locust's (configargparse) parser.

    Straight on the parser, not in an argument group: only Locust's parser understands `include_in_web_ui`.
    """
    for flag, env_var, kwargs in OPTIONS:
        parser.add_argument(flag, env_var=env_var, **kwargs)
