"""Static checks of docker-compose.locust.yml, the Dockerfile and .dockerignore.

Images cannot be pulled on the development machines, so the stack is never started here. The compose file is
validated by Compose itself (`docker compose config`, or the v1 `docker-compose config`) when either is installed,
and always by the structural checks below: every service has an image or a build, fault targets carry the opt-in
label, everything listens on loopback, the master can reach the Docker socket, and the worker can be scaled.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

COMPOSE = ROOT / "docker-compose.locust.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

TARGETS = {"broker", "proxy", "demo-api", "demo-consumer"}
OBSERVERS = {"locust-master", "worker", "prometheus", "grafana"}
ALLOW_LABEL = "chaos-events.allow"


def _compose_cli() -> list[str] | None:
    """The Compose command available here: the v2 plugin, else the v1 `docker-compose`, else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=20)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        probe = subprocess.run(["docker-compose", "version"], capture_output=True, text=True, timeout=20)
        if probe.returncode == 0:
            return ["docker-compose"]
    return None


def _config(cli: list[str], path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    # CHAOS_PLAN is unset on purpose: the file's ${CHAOS_PLAN:-...} default must resolve.
    env = {k: v for k, v in os.environ.items() if k != "CHAOS_PLAN"}
    return subprocess.run([*cli, "-f", str(path), "config"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=env)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _command(service: dict) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _flag(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


def test_compose_validates_with_compose_itself(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed; the structural checks still ran")
    result = _config(cli, COMPOSE, tmp_path)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == TARGETS | OBSERVERS
    master = _command(resolved["services"]["locust-master"])
    assert _flag(master, "--chaos-plan") == "scenarios/gameday-compose.yml"  # the default, interpolated
    # And the check is real: Compose rejects an unknown service key.
    broken = tmp_path / "broken.yml"
    broken.write_text(COMPOSE.read_text().replace("    container_name: chaos-broker\n",
                                                  "    container_name: chaos-broker\n    contaner_name: typo\n", 1))
    assert _config(cli, broken, tmp_path).returncode != 0


def test_the_expected_services_exist(services):
    assert set(services) == TARGETS | OBSERVERS


def test_every_service_has_an_image_or_a_build(services):
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"service {name}: neither image nor build"


def test_harness_services_share_the_image_built_from_the_dockerfile(services):
    for name in ("proxy", "demo-api", "demo-consumer", "locust-master", "worker"):
        service = services[name]
        assert service["build"]["context"] == "." and service["build"]["dockerfile"] == "Dockerfile", name
        assert service["image"] == "chaos-events:local", name


def test_fault_targets_carry_the_opt_in_label_and_observers_do_not(services):
    for name in TARGETS:
        assert services[name].get("labels", {}).get(ALLOW_LABEL) == "true", f"target {name} lacks {ALLOW_LABEL}"
    for name in OBSERVERS:
        labels = services[name].get("labels") or {}
        assert ALLOW_LABEL not in labels, f"{name} observes the run and must not be a fault target"


def test_everything_listens_on_loopback_only(services):
    text = COMPOSE.read_text()
    assert "0.0.0.0" not in text and "[::]" not in text
    for name, service in services.items():
        # Host networking (the machine's rule: containers use the host's loopback), so nothing is published;
        # a published port without 127.0.0.1 would be reachable from other machines in bridge mode.
        assert service.get("network_mode") == "host", f"service {name}: network_mode {service.get('network_mode')!r}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"service {name}: port {port} not bound to 127.0.0.1"
    master = _command(services["locust-master"])
    for flag in ("--web-host", "--master-bind-host", "--chaos-metrics-host"):
        assert _flag(master, flag) == "127.0.0.1", flag
    assert _flag(master, "--web-port") == "8089" and _flag(master, "--chaos-metrics-port") == "9646"
    assert "--web.listen-address=127.0.0.1:9090" in _command(services["prometheus"])
    assert services["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    assert _flag(_command(services["demo-api"]), "--host") == "127.0.0.1"
    for url in re.findall(r"://([^/\s,]+)", services["broker"]["environment"]["KAFKA_LISTENERS"]):
        assert url.startswith("127.0.0.1:"), url
    for route in (a for a in _command(services["proxy"]) if "=" in a):
        assert all(part.startswith("127.0.0.1:") for part in route.split("=")[1:]), route


def test_clients_go_through_the_fault_proxy(services):
    proxy = _command(services["proxy"])
    routes = {a.split("=")[0]: a.split("=")[1:] for a in proxy if a.count("=") == 2}
    assert routes == {"api": ["127.0.0.1:8000", "127.0.0.1:8001"], "kafka": ["127.0.0.1:19092", "127.0.0.1:9092"]}
    assert "PLAINTEXT://127.0.0.1:19092" in services["broker"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name in ("demo-api", "demo-consumer"):
        assert _flag(_command(services[name]), "--bootstrap") == "127.0.0.1:19092", name
    master = _command(services["locust-master"])
    assert _flag(master, "--host") == "http://127.0.0.1:8000"
    assert _flag(master, "--kafka-bootstrap") == "127.0.0.1:19092"


def test_broker_is_a_single_kraft_node(services):
    broker = services["broker"]
    assert broker["image"].startswith("apache/kafka:")
    env = broker["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@127.0.0.1:9093"
    assert "ZOOKEEPER" not in " ".join(env)


def test_master_drives_docker_and_exports_metrics(services):
    master = services["locust-master"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in master["volumes"]
    argv = _command(master)
    assert argv[:3] == ["locust", "-f", "locustfiles/platform.py"] and "--master" in argv
    assert _flag(argv, "--chaos-plan")
    assert _flag(argv, "--chaos-prometheus-url") == "http://127.0.0.1:9090"
    prometheus = yaml.safe_load((ROOT / "dashboards/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "chaos-events"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:" + _flag(argv, "--chaos-metrics-port")]


def test_worker_scales(services):
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container_name makes `--scale worker=N` fail"
    assert not worker.get("ports")
    argv = _command(worker)
    assert "--worker" in argv and _flag(argv, "--master-host") == "127.0.0.1"
    assert _flag(argv, "--master-port") == _flag(_command(services["locust-master"]), "--master-bind-port")
    assert "/var/run/docker.sock:/var/run/docker.sock" not in worker.get("volumes", [])


def test_demo_parts_run_the_supervisors_foreground_commands(services):
    # Same modules the local supervisor starts (demo/supervisor.py part_argv), so compose and `make demo` agree.
    assert _command(services["demo-api"])[:3] == ["python", "-m", "chaos_events.demo.api"]
    assert _command(services["demo-consumer"])[:3] == ["python", "-m", "chaos_events.demo.consumer"]
    assert _command(services["proxy"])[:3] == ["python", "-m", "chaos_events.backends.proxy"]
    for module in ("demo/api.py", "demo/consumer.py", "chaos_events/backends/proxy/__main__.py", "demo/supervisor.py"):
        if not (ROOT / module).exists():
            pytest.skip(f"{module} is not there yet")
    supervisor = (ROOT / "demo/supervisor.py").read_text()
    assert '"-m", "chaos_events.demo.api"' in supervisor and '"-m", "chaos_events.demo.consumer"' in supervisor
    # The API and the consumer share the SQLite store.
    assert _flag(_command(services["demo-api"]), "--store") == _flag(_command(services["demo-consumer"]), "--store")
    assert "demo-store:/data" in services["demo-api"]["volumes"] and "demo-store:/data" in services["demo-consumer"]["volumes"]


def test_prometheus_and_grafana_mount_the_kit(services):
    assert "./dashboards/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in _command(services["prometheus"])
    grafana = services["grafana"]["volumes"]
    assert "./dashboards/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    (mount,) = [m for m in grafana if m.startswith("./dashboards/grafana/dashboards:")]
    assert home == mount.split(":")[1] + "/gameday.json"
    for volume in [*grafana, *services["prometheus"]["volumes"]]:
        assert (ROOT / volume.split(":")[0]).exists(), volume


def test_file_says_images_cannot_be_pulled_here():
    header = COMPOSE.read_text().split("\nservices:")[0]
    assert "cannot be pulled" in header


def test_dockerfile_installs_the_harness_with_the_demo_extra():
    lines = [l.strip() for l in DOCKERFILE.read_text().splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert sum(l.startswith("FROM ") for l in lines) == 1
    text = "\n".join(lines)
    assert re.search(r"pip install[^\n]* -e '\.\[demo\]'", text)
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert source == "." or (ROOT / source).exists(), f"COPY source {source} missing"


def test_dockerignore_keeps_local_state_out_of_the_image():
    entries = {l.strip() for l in DOCKERIGNORE.read_text().splitlines() if l.strip() and not l.startswith("#")}
    assert {".git", ".venv", ".run", "reports"} <= entries
    for required in ("chaos_events", "demo", "locustfiles", "scenarios", "pyproject.toml"):
        assert required not in entries, f"{required} is needed in the image"
