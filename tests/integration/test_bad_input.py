"""Bad input to a real Locust run: exit 2, one clear message naming the file/field/expected value, no traceback,
and nothing started or left broken. A sampler watches the victim process throughout: it must never be paused.

Also `--chaos-dry-run`: the timeline is printed with `would inject` lines and nothing is touched.
"""
from __future__ import annotations

import re
import socket

import pytest

from tests.integration.test_revert_always import assert_no_traceback

GOOD = """
name: lifecycle
targets:
  victim: {process: {pidfile: "@PIDFILE@"}}
faults:
  - {at: 0s, for: 60s, fault: pause, target: victim}
slos:
  - {name: few-errors, metric: error_rate, max: 0.5}
"""

KAFKA_LOCUSTFILE = """
import chaos_events
from chaos_events.locust_plugin.users import KafkaUser
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def visit(self):
        self.client.get("/")


class Producer(KafkaUser):
    wait_time = constant(0.2)

    @task
    def send(self):
        self.produce(b"x")
"""


def _with(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


# (id, scenario text or None for "no file", extra args, env, regexes the output must match)
CASES = [
    ("malformed-yaml", _with(GOOD, "fault: pause, target: victim}", "fault: pause, target: victim"), [], {},
     [r"scenario\.yml:\d+: invalid YAML"]),
    ("unknown-fault", _with(GOOD, "fault: pause", "fault: pauze"), [], {},
     [r"scenario\.yml:\d+ faults\[0\] \(pauze\): unknown fault 'pauze'; expected one of: .*\bpause\b"]),
    ("unknown-target", _with(GOOD, "target: victim}", "target: victm}"), [], {},
     [r"scenario\.yml:\d+ faults\[0\] \(pause\): unknown target 'victm'; declared targets: victim"]),
    ("negative-duration", _with(GOOD, "for: 60s", "for: -5s"), [], {},
     [r"scenario\.yml:\d+ faults\[0\] \(pause\): 'for': must not be negative; got '-5s'"]),
    ("unset-variable", _with(GOOD, '"@PIDFILE@"', '"${CHAOS_TEST_SURELY_UNSET_PIDFILE}"'), [], {},
     [r"scenario\.yml:\d+: environment variable 'CHAOS_TEST_SURELY_UNSET_PIDFILE' is not set and has no default"]),
    ("missing-file", None, [], {}, [r"missing\.yml: scenario file not found"]),
    ("production", GOOD, [], {"CHAOS_ENVIRONMENT": "production"}, [r"refusing to run: CHAOS_ENVIRONMENT=production says this is production"]),
    ("host-not-allowed", GOOD, ["--host", "http://example.invalid:80"], {},
     [r"refusing load host 'http://example\.invalid:80': host 'example\.invalid' is not allowed; allowed hosts: 127\.0\.0\.0/8"]),
]


@pytest.mark.parametrize("name, scenario, extra, env, patterns", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_and_touches_nothing(scene, name, scenario, extra, env, patterns):
    if scenario is None:
        args = scene.args("5s", "--chaos-plan", str(scene.tmp / "missing.yml"), plan=False)
    else:
        scene.write_scenario(scenario)
        args = scene.args("5s")
    run = scene.run(args + extra, env=env)
    _assert_refused(scene, run, patterns)


def test_taken_metrics_port_exits_2(scene):
    scene.write_scenario(GOOD)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = scene.args("5s")
        args[args.index("--chaos-metrics-port") + 1] = str(port)
        run = scene.run(args)
    _assert_refused(scene, run, [rf"--chaos-metrics-port {port}", r"free port"])


def test_invalid_kafka_topic_exits_2(scene):
    scene.write_scenario(GOOD)
    scene.write_locustfile(KAFKA_LOCUSTFILE)
    run = scene.run(scene.args("5s", "--kafka-topic", "bad topic!"))
    _assert_refused(scene, run, [r"--kafka-topic", r"'bad topic!'", r"expected a Kafka topic name"])


def _assert_refused(scene, run, patterns) -> None:
    output = run.output
    assert run.returncode == 2, f"exit {run.returncode}\n{output[-4000:]}"
    assert_no_traceback(output)
    for pattern in patterns:
        assert re.search(pattern, output), f"{pattern!r} not in the output:\n{output[-4000:]}"
    assert "T" not in scene.seen, f"the victim was paused although the input was refused\n{output[-4000:]}"
    assert scene.victim_state() not in ("T", None)
    assert "inject pause" not in output, output[-4000:]
    # Refused before the run started: no journal was opened and no watchdog spawned.
    assert scene.journal_data() is None, scene.journal_data()
    assert scene.watchdog_pids() == [], "a watchdog was started for a refused run"
    assert not (scene.reports / "chaos-report.json").exists()


def test_dry_run_prints_the_timeline_and_touches_nothing(scene):
    scene.write_scenario(GOOD.replace("for: 60s", "for: 2s"))
    run = scene.run(scene.args("4s", "--chaos-dry-run"))
    output = run.output
    assert run.returncode == 0, output[-4000:]   # nothing injected, nothing judged: a dry run never fails a build
    assert "chaos verdict: DRY RUN, nothing injected, SLOs not judged (exit code 0)" in output, output[-4000:]
    assert re.search(r"would inject pause victim .*for 2s \[f0#1\]", output), output[-4000:]
    assert "nothing will be touched" in output, output[-4000:]
    assert "T" not in scene.seen, "the dry run paused the victim"
    assert scene.victim_state() not in ("T", None)
    assert re.search(r"^t=[\d.]+s inject pause", output, re.M) is None, output[-4000:]
    assert scene.journal_entries() == {}
    assert scene.watchdog_pids() == [], "a dry run started a watchdog"
    assert_no_traceback(output)
