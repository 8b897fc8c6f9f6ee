"""The compose brokers' glue (chaos_events.demo.kafka_node): the environment that docker-compose.locust.yml sets
becomes the local cluster's ports, a broken environment is a clear error, and each broker's properties are the
local cluster's. The brokers themselves run in tests/integration/test_compose_gameday.py.
"""
from __future__ import annotations

import re

import pytest
import yaml

from chaos_events.demo import kafka_node
from chaos_events.demo.kafka_cluster import KafkaCluster
from tests.helpers import ROOT


def _compose_env() -> dict[str, str]:
    """kafka-0's environment in the compose file, every ${VAR:-default} at its default."""
    env = yaml.safe_load((ROOT / "docker-compose.locust.yml").read_text())["services"]["kafka-0"]["environment"]
    return {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}


def test_the_compose_environment_gives_every_port_of_every_broker():
    ports = kafka_node.ports_from_env(_compose_env())
    assert sorted(ports) == sorted(f"kafka_{n}{s}" for n in range(3) for s in ("", "_repl", "_controller", "_route"))
    assert len(set(ports.values())) == 12


def test_a_missing_or_bad_port_is_named():
    env = _compose_env()
    del env["CHAOS_KAFKA_2_REPL_PORT"]
    env["CHAOS_KAFKA_0_PORT"] = "ninety"
    with pytest.raises(kafka_node.NodeError, match=r"CHAOS_KAFKA_0_PORT='ninety', CHAOS_KAFKA_2_REPL_PORT"):
        kafka_node.ports_from_env(env)


def test_each_broker_gets_the_local_clusters_properties_with_its_proxy_route(tmp_path):
    ports = kafka_node.ports_from_env(_compose_env())
    cluster = KafkaCluster(tmp_path, ports, "/usr/bin/java", tmp_path / "libs", "Y2hhb3MtZXZlbnRzLWtmaw")
    props = dict(line.split("=", 1) for line in cluster.properties(1).splitlines() if line and not line.startswith("#"))
    assert props["node.id"] == "1"
    assert props["advertised.listeners"].startswith(f"CLIENT://127.0.0.1:{ports['kafka_1_route']},")
    assert props["controller.quorum.voters"].count("@127.0.0.1:") == 3
    assert props["min.insync.replicas"] == "2" and props["default.replication.factor"] == "3"


def test_the_command_line_says_what_it_takes(capsys):
    assert kafka_node.main(["bogus"]) == 2
    assert kafka_node.main(["topics"]) == 2  # topics needs at least one name
    assert "usage: python -m chaos_events.demo.kafka_node" in capsys.readouterr().err
