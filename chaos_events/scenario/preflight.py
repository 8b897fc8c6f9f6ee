"""The pre-run checks: everything that looks at this machine before any load or fault starts, in one step.

What it checks, in this order, stopping at the first kind that fails (exit 2 either way):
1. the production guard (CHAOS_ENVIRONMENT=production refuses the run);
2. targets exist now: pidfiles that name live processes, pids, commands on PATH, working directories, directories,
   containers that exist and opted in, free listen addresses for the proxy routes the scenario declares, Kafka
   clusters that answer with every broker in their `brokers:` map; and each fault's own `preflight` (caps, free
   disk, a reachable Toxiproxy with the named proxy, a broker role's topic and partition);
3. the load host is loopback or allowed;
4. the revert journal lists no leftovers of an earlier run.
A startable process target (it has `restart` or `command`) may be down when only `start` faults use it: that is what
they are for.

Must not import locust, gevent or prometheus_client; docker only lazily (through backends.docker), for containers.

Example:
    plan = load_plan("scenarios/gameday.yml")
    preflight(plan, PreflightOptions(journal_path=".run/chaos-journal.json", load_host="http://127.0.0.1:8000"))
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Mapping

from chaos_events.errors import ChaosError, PlanError, Problem, SafetyError
from chaos_events.faults import fault_type
from chaos_events.scenario.model import Plan, Target, TargetKind
from chaos_events.scenario.safety import check_environment, check_host


@dataclass(frozen=True)
class PreflightOptions:
    """What the run adds to the plan. `journal_path` None skips the leftover check (a dry run touches nothing)."""

    journal_path: str | None = None
    load_host: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    containers: bool = True     # look containers up in Docker (the CLI's --no-target-check skips every target check)
    targets: bool = True


def preflight(plan: Plan, options: PreflightOptions) -> None:
    """Raise SafetyError or PlanError (every target problem at once) when the run must not start."""
    check_environment(options.environ)
    if options.targets:
        problems = target_problems(plan, containers=options.containers)
        if problems:
            raise PlanError(problems)
    check_host(options.load_host, plan.allowed_hosts())
    if options.journal_path:
        from chaos_events.run.journal import check_no_leftovers
        check_no_leftovers(options.journal_path)


def target_problems(plan: Plan, containers: bool = True) -> list[Problem]:
    """Every target that does not exist now, and every fault whose own preflight refuses, located in the file."""
    problems: list[Problem] = []
    # a target that only `start` faults use may be down now: starting it is what they are for
    only_started = {name for name in plan.targets if all(f.type == "start" for f in plan.faults if f.target == name)}
    for target in plan.targets.values():
        where = f"targets.{target.name} ({target.kind.value})"
        for key, message in _target_messages(target, plan, may_be_down=target.name in only_started, containers=containers):
            problems.append(Problem(plan.source, target.line_of(key), where, message))
    for spec in plan.faults:
        for message in _fault_messages(spec, plan.targets[spec.target]):
            problems.append(Problem(plan.source, spec.line, f"faults[{spec.index}] ({spec.type})", message))
    return sorted(problems, key=lambda p: p.line or 0)


def _target_messages(target: Target, plan: Plan, may_be_down: bool, containers: bool) -> list[tuple[str, str]]:
    """(key of the spec the problem is about, message) for one target."""
    if target.kind is TargetKind.PROCESS:
        return process_problems(target.spec, may_be_down)
    if target.kind is TargetKind.PROXY and target.spec.declared:
        from chaos_events.run.proxy_part import listen_problems  # standard library: binds and closes a socket
        return listen_problems(target)
    if target.kind is TargetKind.DIRECTORY:
        return [] if os.path.isdir(target.spec.path) else [("path", f"directory {target.spec.path!r} does not exist")]
    if target.kind is TargetKind.CONTAINER and containers:
        return _container_problems(target.spec, target.name, plan)
    if target.kind is TargetKind.KAFKA_CLUSTER:
        return kafka_cluster_problems(target, plan, may_be_down, containers)
    return []


def _container_problems(spec, name: str, plan: Plan) -> list[tuple[str, str]]:
    from chaos_events.backends import docker as docker_backend
    try:
        docker_backend.resolve_container(spec, name, plan.extra_allowed, error=SafetyError)
    except ChaosError as exc:
        return [("name", str(exc))]
    return []


def kafka_cluster_problems(target: Target, plan: Plan, may_be_down: bool, containers: bool) -> list[tuple[str, str]]:
    """The cluster answers the admin API now (within kafka_admin.TIMEOUT_S), the `brokers:` map covers every broker
    it reports (any of them may be the one a role names at inject), and every mapped broker exists."""
    from chaos_events.backends import kafka_admin

    spec = target.spec
    try:
        reported = kafka_admin.cluster_snapshot(spec.bootstrap).brokers
    except kafka_admin.KafkaAdminError as exc:
        return [("bootstrap", str(exc))]
    problems = []
    missing = [str(n) for n in reported if n not in spec.brokers]
    if missing:
        problems.append(("brokers", f"'brokers': the cluster reports brokers {', '.join(map(str, reported))}; the map "
                                    f"does not cover {', '.join(missing)} (add a process or container for each)"))
    for broker_id in spec.broker_ids():
        service = spec.brokers[broker_id]
        found = (process_problems(service.process, may_be_down) if service.process is not None else
                 _container_problems(service.container, f"{target.name}/broker-{broker_id}", plan) if containers else [])
        problems += [("brokers", f"'brokers': broker {broker_id}: {message}") for _, message in found]
    return problems


def _fault_messages(spec, target: Target) -> list[str]:
    try:
        return [str(m) for m in fault_type(spec.type).preflight(spec.params, target) or []]
    except ChaosError as exc:
        return [str(exc)]
    except Exception as exc:  # noqa: BLE001  (a fault's own check must not turn bad input into a traceback)
        return [f"pre-run check failed: {type(exc).__name__}: {exc}"]


def process_problems(spec, may_be_down: bool = False) -> list[tuple[str, str]]:
    """(key, message) for what is wrong with a process target now; a startable one that is down is fine when
    `may_be_down`."""
    from chaos_events.backends.process import is_alive, parse_pid

    problems = []
    startable = bool(spec.start_argv())
    if spec.pidfile:
        try:
            with open(spec.pidfile, encoding="utf-8") as handle:
                content = handle.read()
        except FileNotFoundError:
            content = None
            if not (startable and may_be_down):
                problems.append(("pidfile", f"pidfile {spec.pidfile!r} does not exist (is the process running?)"))
        except (OSError, UnicodeDecodeError) as exc:
            return [("pidfile", f"pidfile {spec.pidfile!r} cannot be read: {getattr(exc, 'strerror', None) or exc}")]
        pid = parse_pid(content) if content is not None else None
        if content is not None and pid is None:
            return [("pidfile", f"pidfile {spec.pidfile!r} does not hold a process id; got {content.strip()[:40]!r}")]
        if pid == 1:
            return [("pidfile", f"pidfile {spec.pidfile!r} names process 1 (init); refusing to target it")]
        if pid is not None and not is_alive(pid) and not (startable and may_be_down):
            problems.append(("pidfile", f"process {pid} from pidfile {spec.pidfile!r} is not running"))
    if spec.pid and not is_alive(spec.pid):
        problems.append(("pid", f"process {spec.pid} is not running"))
    for key in ("command", "restart"):
        words = getattr(spec, key)
        if words and not _executable(words[0], spec.cwd):
            problems.append((key, f"{key!r}: command {words[0]!r} not found on PATH"))
    if spec.cwd and not os.path.isdir(spec.cwd):
        problems.append(("cwd", f"'cwd': directory {spec.cwd!r} does not exist"))
    return problems


def _executable(word: str, cwd: str | None) -> bool:
    if os.sep in word:
        path = word if os.path.isabs(word) or not cwd else os.path.join(cwd, word)
        return os.path.isfile(path) and os.access(path, os.X_OK)
    return shutil.which(word) is not None
