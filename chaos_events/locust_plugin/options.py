"""The harness's command-line options: the one definition of each flag, its environment variable and its default.

Locust gets them through `add_options` (so they work in locust.conf and as environment variables too); the session,
the CLI and the README table read their defaults here, never from a copy. Must not import locust: it receives the
parser. Keep it free of side effects, because Locust calls `init_command_line_parser` again on every GET of the web
UI page.

Example:
    default("chaos_journal") == ".run/chaos-journal.json"
    print(options_markdown())      # the README's table, and `chaos-events options`
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One harness option. `switch` options take no value (store_true); `web_ui` shows it in Locust's start form."""

    flag: str
    env: str
    default: Any
    help: str
    kind: type = str
    switch: bool = False
    web_ui: bool = True

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def argparse_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"default": self.default, "help": self.help}
        if self.switch:
            kwargs["action"] = "store_true"
        elif self.kind is not str:
            kwargs["type"] = self.kind
        if not self.web_ui:
            kwargs["include_in_web_ui"] = False
        return kwargs


OPTIONS: tuple[Option, ...] = (
    Option("--chaos-plan", "CHAOS_PLAN", "", "Scenario file (YAML) with targets, probes, faults and SLOs. Empty: load only."),
    Option("--chaos-dry-run", "CHAOS_DRY_RUN", False, "Print the timeline and touch nothing.", switch=True),
    Option("--chaos-report-dir", "CHAOS_REPORT_DIR", "reports", "Where the JSON, JUnit XML, Markdown and HTML reports go."),
    Option("--chaos-allow", "CHAOS_ALLOW", "", "Extra allowed targets, comma-separated: container names or hosts."),
    Option("--chaos-allow-unverified", "CHAOS_ALLOW_UNVERIFIED", False,
           "An SLO that cannot be verified is shown but does not fail the run.", switch=True),
    Option("--chaos-journal", "CHAOS_JOURNAL", ".run/chaos-journal.json",
           "Revert journal: faults injected and not yet reverted.", web_ui=False),
    Option("--chaos-metrics-host", "CHAOS_METRICS_HOST", "127.0.0.1", "Address of the Prometheus /metrics exporter.",
           web_ui=False),
    Option("--chaos-metrics-port", "CHAOS_METRICS_PORT", 9646,
           "Port of the Prometheus /metrics exporter; 0 turns it off.", kind=int, web_ui=False),
    Option("--chaos-prometheus-url", "CHAOS_PROMETHEUS_URL", "",
           "Prometheus whose /api/v1/alerts the alert SLOs read. Empty: alert SLOs are not verifiable."),
    Option("--chaos-no-watchdog", "CHAOS_NO_WATCHDOG", False,
           "Do not start the watchdog that reverts faults if Locust dies.", switch=True, web_ui=False),
    Option("--kafka-bootstrap", "KAFKA_BOOTSTRAP", "127.0.0.1:19092",
           "Kafka bootstrap servers for the Kafka user, probes and ledger audit."),
    Option("--kafka-topic", "KAFKA_TOPIC", "events", "Topic the Kafka user produces to and the ledger audits."),
)
_BY_DEST = {option.dest: option for option in OPTIONS}


def default(dest: str) -> Any:
    """The default of an option, by its destination name (`chaos_journal`)."""
    return _BY_DEST[dest].default


def add_options(parser: Any) -> None:
    """Add every harness option to Locust's (configargparse) parser.

    Straight on the parser, not in an argument group: only Locust's parser understands `include_in_web_ui`.
    """
    for option in OPTIONS:
        parser.add_argument(option.flag, env_var=option.env, **option.argparse_kwargs())


def options_markdown() -> str:
    """The options as a Markdown table: flag, environment variable, default, meaning."""
    rows = ["| option | environment variable | default | meaning |", "|---|---|---|---|"]
    for option in OPTIONS:
        shown = "off" if option.switch else (f"`{option.default}`" if option.default not in ("", None) else "(none)")
        rows.append(f"| `{option.flag}` | `{option.env}` | {shown} | {option.help} |")
    return "\n".join(rows) + "\n"
