"""The probe kinds a scenario may declare, one typed model each: what is sampled, and how often.

Pure: standard library and pydantic. The samplers themselves live in chaos_events.observe.probes. A probe only
reads, so its hosts are not held to the fault allow-list.

Example (scenario):
    probes:
      health: {http: {url: "http://127.0.0.1:8000/health", every: 1s}}
      lag:    {kafka_lag: {bootstrap: "127.0.0.1:19092", group: demo-consumer, topic: events, every: 2s}}
      alerts: {prometheus_alerts: {url: "http://127.0.0.1:9090", every: 2s}}
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, field_validator

from chaos_events.scenario.fields import HttpUrl, ScenarioModel, Seconds, Text, WholeNumber, fail, shown

class ProbeKind(enum.Enum):
    HTTP = "http"                            # health endpoint: status plus per-dependency state in the body
    KAFKA_LAG = "kafka_lag"                  # consumer-group lag through the admin API
    PROMETHEUS_ALERTS = "prometheus_alerts"  # /api/v1/alerts of a user-configured Prometheus



@dataclass(frozen=True)
class ProbeSpec:
    """Something sampled on a period during the whole run. `params` is the probe kind's model (probe_kinds.py).

    Example: ProbeSpec("health", ProbeKind.HTTP, HttpProbe(url="http://127.0.0.1:8000/health", every_s=1.0))
    """

    name: str
    kind: ProbeKind
    params: Any
    line: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.params, dict):
            object.__setattr__(self, "params", PROBE_MODELS[self.kind].model_validate(self.params))

    @property
    def every_s(self) -> float:
        return float(self.params.every_s)



Every = Annotated[Seconds, Field(alias="every", gt=0, description="sampling period")]


class HttpProbe(ScenarioModel):
    """GET `url` every period: healthy when the status is one of `expect_status`; a JSON body's per-dependency
    states (`{"dependencies": {"kafka": "ok"}}`) are kept with each sample."""

    url: HttpUrl
    every_s: Every
    expect_status: tuple[WholeNumber, ...] = Field((200,), description="statuses that mean healthy")
    timeout_s: Seconds = Field(2.0, alias="timeout", gt=0, description="request timeout")

    @field_validator("expect_status", mode="before")
    @classmethod
    def _statuses(cls, value):
        items = value if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise fail("must list at least one status")
        return tuple(items)

    @field_validator("expect_status")
    @classmethod
    def _status_range(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        for code in value:
            if not 100 <= code <= 599:
                raise fail(f"must be between 100 and 599; got {shown(code)}")
        return value


class KafkaLagProbe(ScenarioModel):
    """The consumer group's lag on a topic (messages behind the end of each partition), through the admin API."""

    bootstrap: Text = Field(description="bootstrap servers")
    group: Text = Field(description="consumer group id")
    topic: Text
    every_s: Every


class PrometheusAlertsProbe(ScenarioModel):
    """The alerts firing in a Prometheus (`/api/v1/alerts`); healthy means none of ours is firing."""

    url: HttpUrl | None = Field(None, description="Prometheus base URL (default: --chaos-prometheus-url)")
    every_s: Every


PROBE_MODELS: dict[ProbeKind, type[ScenarioModel]] = {
    ProbeKind.HTTP: HttpProbe,
    ProbeKind.KAFKA_LAG: KafkaLagProbe,
    ProbeKind.PROMETHEUS_ALERTS: PrometheusAlertsProbe,
}
