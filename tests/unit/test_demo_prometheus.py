"""The embedded game day's Prometheus hook, without starting Prometheus: the config it renders, which Locust
arguments it reads and adds, and the one line it prints when there is no prometheus binary. (A real Prometheus
runs in tests/integration/test_demo_prometheus.py.)
"""
from __future__ import annotations

import yaml

from chaos_events.demo import prometheus


def test_the_config_scrapes_the_exporter_with_the_projects_rules():
    config = yaml.safe_load(prometheus.render_config(43210))
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "chaos-events" and job["static_configs"][0]["targets"] == ["127.0.0.1:43210"]
    assert config["rule_files"] == [str(prometheus.ALERTS.resolve())]
    assert config["global"]["evaluation_interval"] == "1s"


def test_option_values_are_read_like_argparse_reads_them():
    assert prometheus.option_value(["--chaos-metrics-port", "1", "--x", "--chaos-metrics-port=2"], "--chaos-metrics-port") == "2"
    assert prometheus.option_value(["--chaos-metrics-port"], "--chaos-metrics-port") is None
    assert prometheus.option_value([], "--chaos-prometheus-url") is None


def test_without_a_binary_it_says_how_to_get_one_and_adds_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_BIN", str(tmp_path / "no-such-prometheus"))
    said = []
    local = prometheus.for_gameday([], tmp_path, say=said.append)
    assert local.locust_args == [] and local.proc is None
    (line,) = said
    assert "alerts_fired SLO is not verifiable" in line and "apt-get install prometheus" in line
    local.stop()  # nothing to stop, and no error


def test_a_given_prometheus_url_or_an_exporter_turned_off_starts_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_BIN", "/bin/false")  # would fail loudly if it were started
    said = []
    assert prometheus.for_gameday(["--chaos-prometheus-url", "http://127.0.0.1:1"], tmp_path, say=said.append).locust_args == []
    assert prometheus.for_gameday(["--chaos-metrics-port", "0"], tmp_path, say=said.append).locust_args == []
    assert said == []
