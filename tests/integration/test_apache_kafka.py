"""The ledger of acknowledged writes on a real, replicated Apache Kafka: three KRaft brokers (Java processes), the
TCP fault proxy in front of each, the demo's consumer and API, and real headless Locust runs.

One platform (`--kafka apache`) is shared by the module; each test first waits until every broker runs and every
partition is fully in sync again, since the tests before it killed and froze brokers. Tests:
- the cluster's facts: three brokers, each advertising its own proxy route, topics with RF 3 and min.insync.replicas 2;
- (a) kill -9 of partition 0's leader under load, named by its role and resolved by the fault through the admin API,
  restarted by the fault's revert: exit 0, nothing lost or doubled, the recovery time measured, the broker and the
  leader before and after in the record and the report;
- (b) acks=1 with the followers frozen and the leader killed: acknowledged writes really lost, exit 3, the lost
  count in the JUnit failure;
- the consumer-lag probe, the demo consumer, poison messages and the dead-letter check, in one run;
- isolate_broker on partition 0's leader: fenced and out of the ISRs, clients still reach it, back after the revert.
Needs Java and the jars of `python -m chaos_events.demo fetch-kafka` (tests/helpers.require_kafka).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chaos_events.demo.kafka_cluster import part_name
from chaos_events.demo.procs import pid_alive
from chaos_events.demo.supervisor import ROOT as DEMO_ROOT
from tests.helpers import ROOT, free_port, require, require_kafka, run_locust

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
LOCUSTFILE = str(ROOT / "locustfiles" / "platform.py")
LOCUST_TIMEOUT_S = 180  # the run, the end-of-run audit (catch_up) and a busy 2-core machine
DEMO_MAIN = str(DEMO_ROOT / "demo" / "__main__.py")


@pytest.fixture(scope="module")
def apache_platform(tmp_path_factory):
    """One demo platform on a three-broker Apache Kafka cluster for the module; stopped (by pid) at the end, which
    must leave no broker process and no data directory behind."""
    require_kafka()
    from chaos_events.demo.supervisor import start_platform

    started = time.monotonic()
    platform = start_platform(tmp_path_factory.mktemp("apache-kafka"), kafka="apache")
    print(f"\napache kafka demo platform ready in {time.monotonic() - started:.1f} s")
    cluster = platform.brokers.cluster
    try:
        yield platform
    finally:
        pids = [pid for pid in (cluster.pid(n) for n in range(cluster.brokers)) if pid]
        platform.stop()
        # A broker a fault restarted is no child of ours: once dead it may stay a zombie of an init that does not
        # reap, so "left" means alive, not "has a /proc entry".
        left = [pid for pid in pids if pid_alive(pid)]
        assert not left and not cluster.data_root.exists(), f"stop left brokers {left} or {cluster.data_root}"


@pytest.fixture
def platform(apache_platform):
    """The shared platform, once every broker runs and every partition of the demo topics is in sync."""
    apache_platform.brokers.cluster.wait_in_sync([apache_platform.topic, apache_platform.dlq_topic], timeout_s=120)
    return apache_platform


def run(platform, scenario: str, out: Path, topic: str, run_time: str, env: dict[str, str], users: tuple[str, ...] = ()):
    """A headless Locust run of the demo locustfile (only `users`, when given) with a scenario of SCENARIOS."""
    out.mkdir(parents=True, exist_ok=True)
    args = ["-f", LOCUSTFILE, *users, "--headless", "-u", "10", "-r", "10", "--run-time", run_time,
            "--host", platform.api_url, "--kafka-bootstrap", platform.kafka_bootstrap, "--kafka-topic", topic,
            "--chaos-plan", str(SCENARIOS / scenario), "--chaos-report-dir", str(out),
            "--chaos-metrics-port", str(free_port()), "--chaos-journal", str(out / "journal.json")]
    return run_locust(args, timeout=LOCUST_TIMEOUT_S, env={**platform.env(), "IT_PYTHON": sys.executable, "IT_DEMO_MAIN": DEMO_MAIN, **env})


def explain(result) -> str:
    return f"exit code {result.returncode}\nstdout (tail):\n{result.stdout[-5000:]}\nstderr (tail):\n{result.stderr[-4000:]}"


def report_of(out: Path) -> tuple[dict, dict[str, dict], dict[str, ET.Element]]:
    report = json.loads((out / "chaos-report.json").read_text())
    results = {r["name"]: r for r in report["verdict"]["results"]}
    cases = {case.get("name"): case for case in ET.parse(out / "chaos-report.xml").getroot().iter("testcase")}
    return report, results, cases


def leader_env(platform, topic: str) -> tuple[int, dict[str, str]]:
    """The broker leading partition 0 of `topic` (admin API, now) and the scenario variables naming it."""
    leader = platform.brokers.cluster.leader(topic, 0)
    env = platform.env()
    return leader, {"IT_LEADER_PART": part_name(leader), "IT_LEADER_PIDFILE": env[f"DEMO_KAFKA_BROKER_{leader}_PIDFILE"]}


@pytest.mark.slow  # its own work is instant, but it starts the module's cluster (~15 s)
def test_three_brokers_each_behind_its_own_proxy_route(platform):
    from confluent_kafka.admin import AdminClient, ConfigResource

    cluster = platform.brokers.cluster
    env = platform.env()
    assert env["DEMO_KAFKA_KIND"] == "apache" and env["DEMO_KAFKA_BROKERS"] == "3"
    routes = {n: env[f"DEMO_KAFKA_BROKER_{n}_BOOTSTRAP"] for n in range(3)}
    assert env["DEMO_KAFKA_BOOTSTRAP"] == ",".join(routes.values()) == platform.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": platform.kafka_bootstrap})
    metadata = admin.list_topics(timeout=10)
    # Every broker advertises its proxy route, never its own client port: all client traffic passes the proxy.
    assert {n: f"{b.host}:{b.port}" for n, b in metadata.brokers.items()} == routes
    assert set(routes.values()).isdisjoint(env[f"DEMO_KAFKA_BROKER_{n}_DIRECT"] for n in range(3))
    for topic in (platform.topic, platform.dlq_topic):
        states = cluster.partition_states(topic)
        assert len(states) == 3 and all(len(replicas) == 3 for _, replicas, _ in states.values()), states
        config = admin.describe_configs([ConfigResource("topic", topic)])
        entries = next(iter(config.values())).result(10)
        assert entries["min.insync.replicas"].value == "2"
    # Client, replication and controller listeners are separate ports of each broker.
    ports = [cluster.ports[f"kafka_{n}{suffix}"] for n in range(3) for suffix in ("", "_repl", "_controller")]
    assert len(set(ports)) == 9
    assert all(Path(env[f"DEMO_KAFKA_BROKER_{n}_PIDFILE"]).read_text().strip() == str(cluster.pid(n)) for n in range(3))


@pytest.mark.slow
def test_consumer_lag_probe_poison_messages_and_dead_letters(platform, tmp_path):
    out = tmp_path / "reports"
    result = run(platform, "kafka-consumer-poison.yml", out, platform.topic, "24s", {})
    assert result.returncode == 0, explain(result)
    report, results, _ = report_of(out)

    rejected = results["poison-dead-lettered"]
    sent, dead_lettered = rejected["details"]["poison_sent"], rejected["details"]["dlq_count"]
    assert rejected["status"] == "pass" and sent > 10 and dead_lettered == sent, rejected
    pipeline = results["pipeline-complete"]
    checks = {entry["check"]: entry for entry in pipeline["details"]["ledger"]}
    assert pipeline["status"] == "pass" and set(checks) == {"kafka", "pipeline"}, pipeline
    assert checks["pipeline"]["found"] == checks["pipeline"]["acknowledged"] > 50, checks  # the consumer stored them all

    lag = [s for s in report["record"]["probes"] if s["probe"] == "lag"]
    assert len(lag) > 15 and all(s["value"] is not None and s["healthy"] for s in lag), lag[:5]
    paused = [s["value"] for s in lag if 5 <= s["t"] <= 10]
    assert max(paused) > 5, lag  # committed offsets stood still while the consumer was frozen
    assert lag[-1]["value"] < max(paused), lag[-5:]


@pytest.mark.slow
def test_leader_killed_under_load_loses_no_acknowledged_write(platform, tmp_path):
    """Replication factor 3, min.insync.replicas=2 and the Kafka user's idempotent acks=all producer: the leader of
    partition 0 is SIGKILLed 8 s into the run and restarted by the fault's revert 10 s later, after the cluster
    elected another leader. A write is only acknowledged once two replicas have it, so the new leader has every one:
    nothing lost, nothing doubled. The scenario names the broker by its role (`broker: {leader: ...}` on a
    kafka_cluster target): the fault asks the admin API who leads when it starts, and the record and the report name
    that broker, and the leader at the revert.

    The producer's delivery timeout is 30 s here, longer than the failover (the dead leader is fenced after the
    brokers' 6 s session timeout), as a real service would set it. With the Kafka user's default of 5 s, messages
    time out while in flight to the dead leader, librdkafka bumps the idempotent producer's epoch, and the retried
    in-flight batches that the new leader already had are written again: ~110 duplicates per kill, measured here.
    """
    cluster = platform.brokers.cluster
    leader = cluster.leader(platform.topic, 0)   # only to check what the fault resolves by itself
    env = {"IT_TOPIC": platform.topic, "CHAOS_KAFKA_PRODUCER_CONFIG": json.dumps({"message.timeout.ms": 30000})}
    before = cluster.pid(leader)
    out = tmp_path / "reports"
    result = run(platform, "kafka-leader-kill.yml", out, platform.topic, "34s", env, users=("EventProducerUser",))

    assert result.returncode == 0, explain(result)
    report, results, _ = report_of(out)
    events = report["record"]["events"]
    assert [(e["kind"], e["fault_id"]) for e in events] == [("injected", "f0#1"), ("reverted", "f0#1")]
    role = f"leader of {platform.topic}/0"
    injected, reverted = events
    assert injected["data"] == {"broker_id": leader, "role": role, "leader_before": leader}, injected
    after = reverted["data"]["leader_after"]
    assert reverted["data"]["broker_id"] == leader and after in {0, 1, 2} - {leader}, reverted
    timeline = {e["kind"]: e for e in report["timeline"]}
    assert timeline["injected"]["notes"] == f"broker {leader} ({role}); leader before: {leader}", timeline
    assert timeline["reverted"]["notes"] == f"broker {leader} ({role}); leader before: {leader}; leader after: {after}"
    markdown = (out / "chaos-report.md").read_text()
    assert f"{role} = broker {leader}" in markdown and f"leader after: {after} |" in markdown, markdown
    assert f"the {role} is broker {leader}" in result.stderr + result.stdout, explain(result)

    lost, doubled = results["no-lost-writes"], results["no-duplicates"]
    ledger = lost["details"]["ledger"][0]
    assert (lost["status"], lost["value"], doubled["status"], doubled["value"]) == ("pass", 0, "pass", 0), (lost, doubled)
    assert ledger["acknowledged"] > 500 and ledger["found"] == ledger["acknowledged"], ledger
    recovery = results["recovery"]
    assert recovery["status"] == "pass" and isinstance(recovery["value"], (int, float)), recovery
    print(f"\nleader kafka-{leader} killed (by role), kafka-{after} led at the revert: {ledger['acknowledged']} "
          f"acknowledged writes all found; recovery {recovery['value']:.1f} s")
    # Against Kafka the idempotent producer recovers by itself: the Tansu workaround never replaced it.
    assert "replacing it" not in result.stderr, explain(result)
    restarted = cluster.pid(leader)
    assert restarted is not None and restarted != before, "the revert restarted the killed broker as a new process"


def controller_changes(cluster) -> list[tuple[float, int]]:
    """(wall time, broker) of every "Becoming the active controller" line in the brokers' logs, oldest first: the
    truth a controller role must match. The logs stamp local time to the millisecond."""
    pattern = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\] INFO \[QuorumController id=(\d+)\] "
                         r"Becoming the active controller", re.M)
    changes = []
    for n in range(cluster.brokers):
        for day, millis, broker in pattern.findall(cluster.log_path(n).read_text(errors="replace")):
            changes.append((time.mktime(time.strptime(day, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000, int(broker)))
    return sorted(changes)


@pytest.mark.slow
def test_leader_paused_and_controller_restarted_by_role(platform, tmp_path):
    """Two roles resolved at inject on the real cluster: pause of partition 0's leader, then restart of the active
    controller (the quorum's leader, told by DescribeQuorum; the admin API's "controller" is a random broker in
    KRaft mode). Each event names the broker hit, and who held the role before and at the revert."""
    cluster = platform.brokers.cluster
    leader = cluster.leader(platform.topic, 0)
    env = {"IT_TOPIC": platform.topic, "CHAOS_KAFKA_PRODUCER_CONFIG": json.dumps({"message.timeout.ms": 30000})}
    out = tmp_path / "reports"
    result = run(platform, "kafka-roles.yml", out, platform.topic, "30s", env, users=("EventProducerUser",))

    assert result.returncode == 0, explain(result)
    report, results, _ = report_of(out)
    events = {(e["kind"], e["fault_id"]): e["data"] for e in report["record"]["events"]}
    assert list(events) == [("injected", "f0#1"), ("reverted", "f0#1"), ("injected", "f1#1"), ("reverted", "f1#1")]
    assert events["injected", "f0#1"] == {"broker_id": leader, "role": f"leader of {platform.topic}/0", "leader_before": leader}
    assert events["reverted", "f0#1"]["leader_after"] in {0, 1, 2}, events
    controller, after = events["injected", "f1#1"]["broker_id"], events["reverted", "f1#1"]["controller_after"]
    assert events["injected", "f1#1"]["controller_before"] == controller
    injected_wall = next(e["wall"] for e in report["record"]["events"] if (e["kind"], e["fault_id"]) == ("injected", "f1#1"))
    changes = controller_changes(cluster)
    # The broker the role resolved to was the active controller then; the restart handed the role to another voter.
    assert [b for t, b in changes if t < injected_wall][-1] == controller, (changes, injected_wall, events)
    assert after in {0, 1, 2} - {controller} and [b for t, b in changes if t >= injected_wall][:1] == [after], (changes, events)
    assert results["no-lost-writes"]["status"] == "pass", results["no-lost-writes"]
    print(f"\nleader kafka-{leader} paused; controller kafka-{controller} restarted, kafka-{after} took over")


def isolate_chains() -> set[str]:
    done = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True)
    return {line.split()[1] for line in done.stdout.splitlines() if line.startswith("-N CHAOS-ISOLATE-")}


def watch_isolation(cluster, topic: str, isolated: int, direct: str, before: set[str], done) -> dict:
    """While the run goes on: once the fault's chain is there, whether partition 0's leadership moved away from the
    isolated broker and it left the ISRs, and whether a client on its own client port still gets metadata."""
    from confluent_kafka.admin import AdminClient

    seen: dict = {"chain": None, "moved": False, "out_of_isr": False, "metadata": []}
    while not done.is_set():
        new = isolate_chains() - before
        if new:
            seen["chain"] = seen["chain"] or sorted(new)[0]
            try:
                states = cluster.partition_states(topic)
                seen["moved"] |= states[0][0] not in (isolated, -1)
                seen["out_of_isr"] |= all(isolated not in isr for _, _, isr in states.values())
            except Exception as exc:  # noqa: BLE001  (an admin hiccup under the fault; the next poll retries)
                print(f"partition states: {exc}")
            try:
                seen["metadata"].append(bool(AdminClient({"bootstrap.servers": direct}).list_topics(timeout=5).topics))
            except Exception as exc:  # noqa: BLE001
                print(f"metadata from the isolated broker: {exc}")
                seen["metadata"].append(False)
        done.wait(1.0)
    return seen


@pytest.mark.slow
def test_isolated_leader_loses_its_peers_not_its_clients(platform, tmp_path):
    """isolate_broker on partition 0's leader (by role) for 15 s under load: its inter-broker traffic is dropped by
    iptables (each broker runs with its own gid), its client port is not. During the fault the cluster fences it:
    partition 0's leadership moves away and it leaves every ISR, while a client on its own client port still gets
    metadata; after the revert the chain is gone and it rejoins every ISR; with acks=all, nothing is lost."""
    import threading

    from chaos_events.backends import iptables

    why = iptables.usable()
    require("root and iptables", why is None and "DEMO_KAFKA_BROKER_0_GID" in platform.env(),
            why or "the demo brokers run without gids of their own")
    cluster = platform.brokers.cluster
    isolated = cluster.leader(platform.topic, 0)
    direct = platform.env()[f"DEMO_KAFKA_BROKER_{isolated}_DIRECT"]
    env = {"IT_TOPIC": platform.topic, "CHAOS_KAFKA_PRODUCER_CONFIG": json.dumps({"message.timeout.ms": 30000})}
    before, done, seen = isolate_chains(), threading.Event(), {}
    watcher = threading.Thread(target=lambda: seen.update(watch_isolation(cluster, platform.topic, isolated, direct,
                                                                          before, done)), daemon=True)
    watcher.start()
    out = tmp_path / "reports"
    try:
        result = run(platform, "kafka-isolate.yml", out, platform.topic, "30s", env, users=("EventProducerUser",))
    finally:
        done.set()
        watcher.join(timeout=30)
        for chain in isolate_chains() - before:    # only chains this run made, even when it failed
            iptables.remove(chain)
    assert result.returncode == 0, explain(result)
    assert seen["chain"] and seen["chain"].endswith(f"-{isolated}"), seen
    assert seen["moved"] and seen["out_of_isr"], seen
    assert seen["metadata"] and all(seen["metadata"]), seen
    assert isolate_chains() - before == set()
    cluster.wait_in_sync([platform.topic], timeout_s=60)   # it caught up and rejoined every ISR
    assert all(isolated in isr for _, _, isr in cluster.partition_states(platform.topic).values())
    report, results, _ = report_of(out)
    injected, reverted = report["record"]["events"]
    assert injected["data"]["broker_id"] == isolated and injected["data"]["chain"] == seen["chain"], injected
    lost = results["no-lost-writes"]
    ledger = lost["details"]["ledger"][0]
    assert (lost["status"], lost["value"]) == ("pass", 0) and ledger["found"] == ledger["acknowledged"] > 200, lost
    print(f"\nkafka-{isolated} isolated 15 s: leadership moved, out of the ISRs, metadata still served directly; "
          f"{ledger['acknowledged']} acknowledged writes all found")


@pytest.mark.slow
def test_acks1_leader_death_with_frozen_followers_loses_acknowledged_writes(platform, tmp_path):
    """A configuration that loses acknowledged writes, caught by the ledger (exit 3, the count in the JUnit failure).

    How: the Kafka user produces with acks=1 (the leader acknowledges once the write is in its own log). 6 s in,
    both followers of partition 0 are frozen (SIGSTOP) for 10 s; the leader keeps acknowledging partition 0's writes
    alone. 11 s in, the leader is SIGKILLed. When the followers resume, a follower becomes the leader with a log that
    ends where the freeze began, and the old leader, restarted 24 s in, truncates its log to the new leader's: every
    write acknowledged during the 5 s between freeze and kill is gone.
    Why it is deterministic: nothing races. The followers fetch nothing while frozen, and with two of the three
    controllers frozen the quorum can neither shrink the ISR nor move leadership, so the outcome does not depend on
    replication lag or timing within milliseconds; 10 users acknowledge writes to partition 0 for 5 s, so the loss
    is always dozens to hundreds of writes (122 in a run here), never zero. The topic is this test's own, so the others' data is untouched.
    """
    cluster = platform.brokers.cluster
    topic = f"acks1-{os.getpid()}"
    cluster.create_topics({topic: {}})
    leader, env = leader_env(platform, topic)
    followers = [n for n in range(3) if n != leader]
    env.update({"IT_FOLLOWER_A_PIDFILE": str(cluster.pidfile(followers[0])), "IT_FOLLOWER_B_PIDFILE": str(cluster.pidfile(followers[1])),
                "CHAOS_KAFKA_PRODUCER_CONFIG": json.dumps({"acks": "1", "enable.idempotence": False})})
    out = tmp_path / "reports"
    result = run(platform, "kafka-acks1-frozen-followers.yml", out, topic, "36s", env, users=("EventProducerUser",))

    assert result.returncode == 3, explain(result)
    _, results, cases = report_of(out)
    lost = results["no-lost-writes"]
    assert lost["status"] == "fail" and lost["value"] > 20, lost
    failure = cases["no-lost-writes"].find("failure")
    assert failure is not None, ET.tostring(cases["no-lost-writes"], encoding="unicode")
    match = re.fullmatch(r"lost_writes: (\d+) acknowledged writes lost \(kafka check\), limit 0", failure.get("message"))
    assert match and int(match.group(1)) == lost["value"], failure.get("message")
    print(f"\nacks=1, followers frozen, leader kafka-{leader} killed: {lost['value']} acknowledged writes lost")
    cluster.wait_in_sync([topic], timeout_s=120)  # leave the shared cluster whole for whoever comes next


@pytest.mark.slow  # instant, with the module's cluster running
def test_broker_kind_is_told_by_the_cluster(platform, tansu, monkeypatch):
    """The Tansu workarounds switch on what the cluster says it is: real Apache Kafka, and a real Tansu."""
    from chaos_events.observe.broker_kind import ENV, BrokerKind, detect

    monkeypatch.delenv(ENV, raising=False)
    assert detect(platform.kafka_bootstrap) is BrokerKind.KAFKA
    assert detect(tansu) is BrokerKind.TANSU
    assert detect(f"127.0.0.1:{free_port()}", timeout_s=1.0) is BrokerKind.UNKNOWN
    monkeypatch.setenv(ENV, "tansu")  # an explicit setting wins, without asking
    assert detect(platform.kafka_bootstrap) is BrokerKind.TANSU


KAFKA_ONLY_LOCUSTFILE = """
import chaos_events
from chaos_events.locust_plugin.users import KafkaUser
from locust import constant, task


class Producer(KafkaUser):
    wait_time = constant(0.2)

    @task
    def send(self):
        self.produce(b"x")
"""


@pytest.mark.parametrize("env, message", [
    ({"CHAOS_KAFKA_PRODUCER_CONFIG": '{"acks": '},
     "error: invalid $CHAOS_KAFKA_PRODUCER_CONFIG: expected a JSON object of librdkafka settings; Expecting value: line 1 column 9 (char 8)"),
    ({"CHAOS_KAFKA_PRODUCER_CONFIG": '["acks", "1"]'},
     "error: invalid $CHAOS_KAFKA_PRODUCER_CONFIG: expected a JSON object of librdkafka settings (string, number or boolean "
     "values); got '[\"acks\", \"1\"]'"),
    ({"CHAOS_KAFKA_BROKER_KIND": "redpanda"}, "error: invalid $CHAOS_KAFKA_BROKER_KIND: expected one of auto, kafka, tansu; got 'redpanda'"),
], ids=["not-json", "not-an-object", "unknown-kind"])
def test_bad_kafka_settings_in_the_environment_exit_2(tmp_path, env, message):
    locustfile = tmp_path / "lf.py"
    locustfile.write_text(KAFKA_ONLY_LOCUSTFILE)
    result = run_locust(["-f", str(locustfile), "--headless", "-u", "1", "-r", "1", "--run-time", "10s",
                         "--kafka-bootstrap", f"127.0.0.1:{free_port()}", "--chaos-metrics-port", "0"], timeout=60, env=env)
    assert result.returncode == 2, explain(result)
    assert message in result.stderr.splitlines(), explain(result)
    assert "Traceback" not in result.stderr, explain(result)


def test_missing_jars_or_java_say_what_to_do(tmp_path):
    """No cluster needed: the demo refuses to start Apache Kafka without Java or the jars, naming the fix (exit 2)."""
    demo = [sys.executable, "-m", "chaos_events.demo", "up", "--kafka", "apache", "--free-ports", "--run-dir", str(tmp_path / "run")]
    no_jars = subprocess.run(demo, cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "CHAOS_KAFKA_HOME": str(tmp_path / "empty-cache")})
    assert no_jars.returncode == 2, no_jars.stderr
    assert re.fullmatch(r"error: Apache Kafka [\d.]+ jars not found in \S+/empty-cache/[\d.]+/libs \(or incomplete\): run "
                        r"`python -m chaos_events.demo fetch-kafka` \(Maven, once; \$CHAOS_KAFKA_HOME moves the cache\)\n",
                        no_jars.stderr), no_jars.stderr
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    no_java = subprocess.run(demo, cwd=ROOT, capture_output=True, text=True, timeout=60, env={**env, "PATH": str(Path(sys.executable).parent)})
    assert no_java.returncode == 2
    assert no_java.stderr.startswith("error: java not found ($JAVA_HOME/bin/java or java on PATH): Apache Kafka 4.x needs Java 17"), no_java.stderr
    assert not (tmp_path / "run" / "kafka-0.pid").exists()


def test_fetch_kafka_twice_does_nothing_the_second_time_and_needs_no_maven(tmp_path):
    require_kafka()
    from chaos_events.demo.kafka_dist import java_binary

    java_home = str(Path(java_binary()).parent.parent)
    # No mvn on PATH: a complete cache must not call Maven at all (so it also works offline).
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "JAVA_HOME": java_home}
    fetch = subprocess.run([sys.executable, "-m", "chaos_events.demo", "fetch-kafka"], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert fetch.returncode == 0, fetch.stderr
    assert re.fullmatch(r"Apache Kafka [\d.]+: already in \S+/libs \(\d+ jars\); nothing to do\n", fetch.stdout), fetch.stdout
