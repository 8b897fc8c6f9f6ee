"""What a scenario says about holding the run, besides its faults: the steady state that must hold before a fault
(`steady_state`), the stop conditions that halt a run that is hurting its target (`halt_when`, `on_halt`), and how
the ledger reads acknowledged writes back from the platform (`ledger`). One typed model each.

Pure: standard library and pydantic. The run evaluates them (chaos_events.run.steady, chaos_events.run.halts,
chaos_events.observe.ledger).

Example (scenario):
    steady_state: {probes: [health], max_error_rate: 1%, max_p95: 500ms, window: 10s, wait_up_to: 30s}
    halt_when:
      - {error_rate: {max: 50%, for: 10s, endpoints: "POST /api/events"}}
      - {probe_failing: {probe: health, for: 20s}}
      - {alert_firing: {alerts: [KafkaConsumerLagHigh]}}
    on_halt: stop_load
    ledger: {read_back: {url: "http://127.0.0.1:8000/api/events/lookup", ids_field: ids, found_field: found}}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from chaos_events.scenario.fields import (
    HttpUrl, Number, Ratio, ScenarioModel, Seconds, Text, TextList, WholeNumber, choice, fail,
)

OnHalt = choice("stop_load", "keep_load")
Sustained = Annotated[Seconds, Field(alias="for", gt=0, description="the condition must hold this long to trip")]
ProbeNames = Annotated[TextList, Field(description="declared probes that must be healthy")]
Endpoints = Annotated[TextList, Field(description="requests judged: Locust's request name or `METHOD name`; "
                                                  "none means every endpoint")]


class SteadyState(ScenarioModel):
    """Checked right before the first fault, and before every fault marked `steady_state: true`. When it does not
    hold within `wait_up_to`, the fault is not injected, nothing is touched, and the run fails as incomplete
    ("steady state not met before f0: ..."). While the run waits, the rest of the timeline waits with it."""

    probes: ProbeNames = ()
    max_error_rate: Ratio | None = Field(None, ge=0, le=1, description="error rate over the last `window`")
    max_p95: Seconds | None = Field(None, description="p95 latency over the last `window`")
    endpoints: Endpoints = ()
    window_s: Seconds = Field(10.0, alias="window", gt=0, description="how much recent traffic is judged")
    wait_up_to_s: Seconds = Field(30.0, alias="wait_up_to", description="how long to wait for the steady state")

    @model_validator(mode="after")
    def _something_to_check(self) -> "SteadyState":
        if not self.probes and self.max_error_rate is None and self.max_p95 is None:
            raise fail("expected at least one of: probes, max_error_rate, max_p95")
        return self


class ErrorRateHalt(ScenarioModel):
    """The error rate of the chosen endpoints is above `max` in every second for `for`."""

    max: Ratio = Field(ge=0, le=1, description="error-rate limit (0.5 or 50%)")
    for_s: Sustained
    endpoints: Endpoints = ()


class LatencyHalt(ScenarioModel):
    """A latency percentile of the chosen endpoints is above `max` in every second for `for`."""

    percentile: Number = Field(95.0, ge=50, le=99.9, description="which percentile")
    max_s: Seconds = Field(alias="max", gt=0, description="latency limit")
    for_s: Sustained
    endpoints: Endpoints = ()


class ProbeFailingHalt(ScenarioModel):
    """A declared probe has been unhealthy in every sample for `for`."""

    probe: Text = Field(description="a declared probe")
    for_s: Sustained


class AlertFiringHalt(ScenarioModel):
    """An alert fires (in a prometheus_alerts probe, or the one --chaos-prometheus-url gives)."""

    alerts: TextList = Field((), description="only these alerts (default: any)")
    probe: Text | None = Field(None, description="a declared prometheus_alerts probe")


HALT_KINDS: dict[str, type[ScenarioModel]] = {
    "error_rate": ErrorRateHalt, "latency": LatencyHalt, "probe_failing": ProbeFailingHalt,
    "alert_firing": AlertFiringHalt,
}


@dataclass(frozen=True)
class HaltCondition:
    """One stop condition of `halt_when`, written with exactly one kind (`{error_rate: {...}}`): `kind` names it,
    `params` is that kind's model, `index` its place in the list."""

    index: int
    kind: str
    params: Any
    line: int | None = None

    @property
    def label(self) -> str:
        return f"halt_when[{self.index}] ({self.kind})"


class ReadBack(ScenarioModel):
    """How the pipeline check reads acknowledged writes back from the platform. A `url` with `{id}` is asked once
    per id (found: one of `found_status`); without it, ids are POSTed in batches as `{ids_field: [...]}` and the
    answer's `found_field` lists those found."""

    url: HttpUrl = Field(description="lookup endpoint: a batch URL, or a template with {id}")
    ids_field: Text = Field("ids", description="batch request: the field that carries the ids")
    found_field: Text = Field("found", description="batch answer: the field that lists the ids found")
    batch: WholeNumber = Field(500, ge=1, le=10_000, description="ids per batch request")
    sample: Ratio = Field(1.0, gt=0, le=1, description="share of acknowledged writes checked (a fixed sample)")
    found_status: tuple[WholeNumber, ...] = Field((200,), description="template URL: statuses that mean found")

    @field_validator("found_status", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, (list, tuple)) else (value,)


class LedgerConfig(ScenarioModel):
    """The ledger of acknowledged writes: where its pipeline check reads back (`read_back`). Without it, only the
    Kafka check can run (lost_writes / duplicates with `check: pipeline` then cannot be verified)."""

    read_back: ReadBack | None = None
