"""Static checks of docker-compose.locust.yml, the Dockerfile, .dockerignore and the compose scenarios.

The stack itself runs in tests/integration/test_compose_gameday.py (its own CI step). Here: Compose itself
validates the file (`docker compose config`, or the v1 `docker-compose config`) when either is installed, and
structural checks pin what the game day relies on: fault targets carry the opt-in label and observers do not,
everything is on loopback with every port a variable, start order waits for health, the journal outlives the
master on a volume that the watchdog shares, and the scenarios name containers that the file defines.
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
SCENARIOS = [ROOT / "scenarios" / "gameday-compose.yml", ROOT / "scenarios" / "gameday-compose-broken.yml"]

BROKERS = {"kafka-0", "kafka-1", "kafka-2"}
TARGETS = BROKERS | {"proxy", "demo-api", "demo-consumer"}
OBSERVERS = {"locust-master", "worker", "watchdog", "prometheus", "grafana"}
HELPERS = {"kafka-topics"}
ALLOW_LABEL = "chaos-events.allow"
PORT_VAR = re.compile(r"\$\{(CHAOS_\w+_PORT):-(\d+)\}")


def compose_cli() -> list[str] | None:
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


def _config(cli: list[str], path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # CHAOS_* unset on purpose: the file's ${VAR:-default} defaults must resolve.
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHAOS_")}
    return subprocess.run([*cli, "-f", str(path), "config"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**base, **(env or {})})


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


def _defaults(text: str) -> str:
    """The file's text with every ${VAR:-default} replaced by its default (what Compose does with VAR unset)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def test_compose_validates_with_compose_itself(tmp_path):
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed; the structural checks still ran")
    result = _config(cli, COMPOSE)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == TARGETS | OBSERVERS | HELPERS
    master = _command(resolved["services"]["locust-master"])
    assert _flag(master, "--chaos-plan") == "scenarios/gameday-compose.yml"  # the default, interpolated
    assert resolved["services"]["kafka-1"]["container_name"] == "chaos-kafka-1"
    # Variables move the stack: another name and other ports, so two stacks can run side by side.
    moved = yaml.safe_load(_config(cli, COMPOSE, {"CHAOS_STACK": "other", "CHAOS_API_PORT": "18001"}).stdout)
    assert moved["services"]["kafka-1"]["container_name"] == "other-kafka-1"
    assert _flag(_command(moved["services"]["demo-api"]), "--port") == "18001"
    # And the check is real: Compose rejects an unknown service key.
    broken = tmp_path / "broken.yml"
    broken.write_text(COMPOSE.read_text().replace("  proxy:\n", "  proxy:\n    contaner_name: typo\n", 1))
    assert _config(cli, broken).returncode != 0


def test_the_expected_services_exist(services):
    assert set(services) == TARGETS | OBSERVERS | HELPERS


def test_every_service_has_an_image_and_only_local_images_outside_the_grafana_profile(services):
    for name, service in services.items():
        assert service.get("image"), f"service {name}: no image"
        if name != "grafana":
            assert service["image"].startswith("chaos-events") and service["image"].endswith(":local"), (
                f"{name} uses {service['image']}, which would need a registry; build images with chaos_events.demo.images")
    assert services["grafana"]["profiles"] == ["grafana"]
    assert all("profiles" not in s for n, s in services.items() if n != "grafana")


def test_harness_services_share_the_image_built_from_the_dockerfile(services):
    for name in ("proxy", "demo-api", "demo-consumer", "locust-master", "worker", "watchdog"):
        service = services[name]
        assert service["build"]["context"] == "." and service["build"]["dockerfile"] == "Dockerfile", name
        assert service["build"]["args"]["BASE_IMAGE"] == "${CHAOS_BASE_IMAGE:-python:3.11-slim}", name
        assert service["image"] == "chaos-events:local", name


def test_fault_targets_carry_the_opt_in_label_and_observers_do_not(services):
    for name in TARGETS:
        assert services[name].get("labels", {}).get(ALLOW_LABEL) == "true", f"target {name} lacks {ALLOW_LABEL}"
    for name in OBSERVERS | HELPERS:
        labels = services[name].get("labels") or {}
        assert ALLOW_LABEL not in labels, f"{name} observes the run and must not be a fault target"


def test_everything_listens_on_loopback_and_every_port_is_a_variable(services):
    text = COMPOSE.read_text()
    assert "0.0.0.0" not in text and "[::]" not in text
    for name, service in services.items():
        # Host networking (the machine's rule: containers use the host's loopback), so nothing is published.
        assert service.get("network_mode") == "host", f"service {name}: network_mode {service.get('network_mode')!r}"
        assert not service.get("ports"), f"service {name} publishes ports; with host networking they do nothing"
    literal = [m.group(0) for m in re.finditer(r"127\.0\.0\.1:\d+", text)]
    assert not literal, f"addresses with a fixed port (use a CHAOS_*_PORT variable): {literal}"
    defaults = {}
    for var, default in PORT_VAR.findall(text):
        assert defaults.setdefault(var, default) == default, f"{var} has two defaults"
    assert len(set(defaults.values())) == len(defaults), f"two port variables share a default: {defaults}"
    master = _command(services["locust-master"])
    for flag in ("--web-host", "--master-bind-host", "--chaos-metrics-host"):
        assert _flag(master, flag) == "127.0.0.1", flag
    assert services["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    assert _flag(_command(services["demo-api"]), "--host") == "127.0.0.1"
    for route in (a for a in _command(services["proxy"]) if a.count("=") == 2):
        assert all(part.startswith("127.0.0.1:") for part in route.split("=")[1:]), route


def test_clients_go_through_the_fault_proxy(services):
    routes = {a.split("=")[0]: a.split("=")[1:] for a in _command(services["proxy"]) if a.count("=") == 2}
    assert set(routes) == {"api", "kafka-0", "kafka-1", "kafka-2"}
    env = services["kafka-0"]["environment"]
    for n in range(3):
        route, broker = routes[f"kafka-{n}"]
        assert route == f"127.0.0.1:${{CHAOS_KAFKA_{n}_ROUTE_PORT:-{PORT_VAR.search(route).group(2)}}}"
        assert broker.endswith(f"{{CHAOS_KAFKA_{n}_PORT:-{env[f'CHAOS_KAFKA_{n}_PORT'].split(':-')[1]}")
    bootstrap = ",".join(route for name, (route, _) in sorted(routes.items()) if name.startswith("kafka-"))
    for name in ("demo-api", "demo-consumer"):
        assert _flag(_command(services[name]), "--bootstrap") == bootstrap, name
    for name in ("locust-master", "worker"):
        assert _flag(_command(services[name]), "--kafka-bootstrap") == bootstrap, name
        assert _flag(_command(services[name]), "--host") == "http://" + routes["api"][0], name
    assert services["locust-master"]["environment"]["DEMO_KAFKA_BOOTSTRAP"] == bootstrap


def test_the_brokers_form_one_cluster_and_get_every_port(services):
    envs = [services[name]["environment"] for name in sorted(BROKERS)]
    assert [env["CHAOS_KAFKA_NODE"] for env in envs] == ["0", "1", "2"]
    shared = [{k: v for k, v in env.items() if k != "CHAOS_KAFKA_NODE"} for env in envs]
    assert shared[0] == shared[1] == shared[2] == services["kafka-topics"]["environment"]
    assert len(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", shared[0]["CHAOS_KAFKA_CLUSTER_ID"])) == 22
    for name in BROKERS:
        assert _command(services[name]) == ["python", "-m", "chaos_events.demo.kafka_node", "run"]
        assert services[name]["image"] == "chaos-events-kafka:local"
        assert "restart" not in services[name], "the revert of a kill fault must be what starts it again"


def test_start_order_waits_for_health(services):
    healthy = {name for name, s in services.items() if s.get("healthcheck")}
    for name, service in services.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            condition = how["condition"]
            assert condition in ("service_healthy", "service_completed_successfully", "service_started"), (name, how)
            if condition == "service_healthy":
                assert dependency in healthy, f"{name} waits for {dependency} to be healthy, which has no healthcheck"
    assert {d for d, h in services["locust-master"]["depends_on"].items() if h["condition"] == "service_healthy"} == \
        {"demo-api", "proxy", "prometheus"}
    # The brokers' gate is the kafka-topics one shot (it waits for all three itself); the consumer's is the API's
    # /health, which is 200 only with a live consumer holding partitions.
    assert _command(services["kafka-topics"])[:4] == ["python", "-m", "chaos_events.demo.kafka_node", "topics"]
    assert services["demo-consumer"]["depends_on"]["kafka-topics"] == {"condition": "service_completed_successfully"}
    assert "/health" in " ".join(services["demo-api"]["healthcheck"]["test"])
    assert services["demo-api"]["depends_on"] == {"demo-consumer": {"condition": "service_started"}}


def test_containers_a_scenario_pauses_run_no_exec_healthcheck(services):
    # runc cannot freeze a container while `docker exec` starts a healthcheck in it ("unable to freeze"), so a
    # healthcheck there makes `docker pause` fail at random.
    from chaos_events.scenario.loader import load_plan

    by_name = {_defaults(s["container_name"]): n for n, s in services.items() if "container_name" in s}
    by_label = {f"{k}={_defaults(v)}": n for n, s in services.items() for k, v in (s.get("labels") or {}).items()}
    paused = set()
    for scenario in SCENARIOS:
        plan = load_plan(scenario)
        for fault in plan.faults:
            if fault.type == "pause" and plan.targets[fault.target].kind.value == "container":
                spec = plan.targets[fault.target].spec
                paused.add(by_name.get(spec.name or "") or by_label[spec.label])
    assert paused == {"kafka-1", "demo-consumer"}
    for name in paused | BROKERS:
        assert "healthcheck" not in services[name], f"{name} is paused by a scenario and must not run a healthcheck"


def test_the_journal_outlives_the_master(services, compose):
    master, watchdog = services["locust-master"], services["watchdog"]
    argv = _command(master)
    journal = _flag(argv, "--chaos-journal")
    assert "--chaos-no-watchdog" in argv, "the in-container watchdog dies with the master"
    (mount,) = [v for v in master["volumes"] if v.startswith("journal:")]
    assert journal.startswith(mount.split(":")[1] + "/") and "journal" in compose["volumes"]
    assert mount in watchdog["volumes"] and "/var/run/docker.sock:/var/run/docker.sock" in watchdog["volumes"]
    wargv = _command(watchdog)
    assert wargv[:3] == ["python", "-m", "chaos_events.run.container_watchdog"]
    assert _flag(wargv, "--journal") == journal
    assert _flag(wargv, "--container") == master["container_name"]
    assert master["depends_on"]["watchdog"] == {"condition": "service_started"}


def test_master_is_headless_drives_docker_and_exports_metrics(services):
    master = services["locust-master"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in master["volumes"]
    assert "${CHAOS_REPORT_DIR:-./reports}:/app/reports" in master["volumes"]
    argv = _command(master)
    assert argv[:3] == ["locust", "-f", "locustfiles/platform.py"] and "--master" in argv and "--headless" in argv
    assert _flag(argv, "--chaos-report-dir") == "/app/reports"
    assert _flag(argv, "--expect-workers") == "${CHAOS_WORKERS:-2}"
    assert _flag(argv, "--chaos-plan") == "${CHAOS_PLAN:-scenarios/gameday-compose.yml}"
    assert _flag(argv, "--chaos-prometheus-url") == "http://127.0.0.1:${CHAOS_PROMETHEUS_PORT:-9090}"
    prometheus = services["prometheus"]["environment"]
    assert prometheus == {"PROMETHEUS_PORT": "${CHAOS_PROMETHEUS_PORT:-9090}",
                          "CHAOS_METRICS_PORT": _flag(argv, "--chaos-metrics-port")}
    # The image's entrypoint moves the project's scrape target to CHAOS_METRICS_PORT; it must still be there.
    config = yaml.safe_load((ROOT / "dashboards/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "chaos-events"]
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9646"]
    assert '"127.0.0.1:9646"' in (ROOT / "images/prometheus/entrypoint.sh").read_text()


def test_worker_scales(services):
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container_name makes `--scale worker=N` fail"
    argv = _command(worker)
    assert "--worker" in argv and _flag(argv, "--master-host") == "127.0.0.1"
    assert _flag(argv, "--master-port") == _flag(_command(services["locust-master"]), "--master-bind-port")
    assert _flag(argv, "--chaos-metrics-port") == "0"
    assert "/var/run/docker.sock:/var/run/docker.sock" not in worker.get("volumes", [])


def test_demo_parts_run_the_supervisors_foreground_commands(services):
    # Same modules the local supervisor starts (chaos_events/demo/supervisor.py part_argv), so compose and
    # `make demo` agree.
    supervisor = (ROOT / "chaos_events/demo/supervisor.py").read_text()
    for name, module in (("demo-api", "chaos_events.demo.api"), ("demo-consumer", "chaos_events.demo.consumer")):
        assert _command(services[name])[:3] == ["python", "-m", module]
        assert f'"-m", "{module}"' in supervisor
    assert _command(services["proxy"])[:2] == ["chaos-events", "proxy"]
    assert _flag(_command(services["demo-api"]), "--store") == _flag(_command(services["demo-consumer"]), "--store")
    assert "demo-store:/data" in services["demo-api"]["volumes"] and "demo-store:/data" in services["demo-consumer"]["volumes"]


def test_grafana_mounts_the_kit(services):
    grafana = services["grafana"]["volumes"]
    assert "./dashboards/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    (mount,) = [m for m in grafana if m.startswith("./dashboards/grafana/dashboards:")]
    assert home == mount.split(":")[1] + "/gameday.json"
    for volume in grafana:
        assert (ROOT / volume.split(":")[0]).exists(), volume


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_the_compose_scenarios_name_containers_the_file_defines(scenario, services):
    from chaos_events.scenario.loader import load_plan

    plan = load_plan(scenario)
    stack = "chaos"  # CHAOS_STACK's default, as in the file
    names = {_defaults(s["container_name"]): s for s in services.values() if "container_name" in s}
    labels = {f"{k}={_defaults(v)}": s for s in services.values() for k, v in (s.get("labels") or {}).items()}
    containers = [t for t in plan.targets.values() if t.kind.value == "container"]
    assert containers, f"{scenario.name} has no container target"
    for target in containers:
        service = names.get(target.spec.name or "") or labels.get(target.spec.label or "")
        assert service is not None, f"{scenario.name}: target {target.name} {target.spec} matches no service"
        assert service["labels"][ALLOW_LABEL] == "true"
        assert stack in (target.spec.name or target.spec.label)


def test_dockerfile_builds_from_python_slim_or_a_local_base():
    lines = [l.strip() for l in DOCKERFILE.read_text().splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert lines[0] == "ARG BASE_IMAGE=python:3.11-slim" and lines[1] == "FROM ${BASE_IMAGE}"
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
    for required in ("chaos_events", "locustfiles", "scenarios", "pyproject.toml"):
        assert required not in entries, f"{required} is needed in the image"
