"""The three ways in agree on a bad scenario: `chaos-events validate`, `chaos-events dry-run` and Locust's
`--chaos-plan` give the same exit code and the same first error line, for real scenarios with one hostile change
(tests/scenario_mutations.py, 20 cases with a fixed seed).

A case that is a valid plan is not given to Locust (it would start load): there validate and dry-run must agree with
each other, and without the target check both must pass.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from chaos_events.errors import PlanError
from chaos_events.scenario.loader import parse_plan
from tests.helpers import LOCUST, VENV_BIN, free_port, stop_group
from tests.scenario_mutations import mutated_files

CHAOS_EVENTS = str(VENV_BIN / "chaos-events")
TIMEOUT = 60
LOCUSTFILE = """
import chaos_events  # noqa: F401  (the harness)
from locust import FastHttpUser, constant, task


class Visitor(FastHttpUser):
    wait_time = constant(1)

    @task
    def visit(self):
        self.client.get("/")
"""
# No DEMO_* or CHAOS_* from the caller: the files' own defaults apply, and no option comes from the environment.
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("DEMO_", "CHAOS_"))} | {"PYTHONUNBUFFERED": "1"}


def _run_all(commands: dict[str, list[str]], cwd: Path) -> dict[str, tuple[int, str, str]]:
    """Run the commands side by side; (exit code, stdout, stderr) of each. Every process is ended by its pid."""
    procs = {name: subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, errors="replace", start_new_session=True)
             for name, argv in commands.items()}
    results = {}
    try:
        for name, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                stop_group(proc)
                out, err = proc.communicate()
                pytest.fail(f"{name} did not finish within {TIMEOUT}s\n{out[-2000:]}\n{err[-2000:]}")
            results[name] = (proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                stop_group(proc)
                proc.wait(10)
    return results


def _first_error(stderr: str, locust: bool = False) -> str:
    """The first line of the message: the CLI prints it first; Locust after its log and `chaos-events: invalid
    scenario:` (the one prefix a tool adds)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if locust:
        start = next((i for i, line in enumerate(lines) if line.startswith("chaos-events: ")), None)
        assert start is not None, f"no chaos-events message from Locust:\n{stderr[-3000:]}"
        lines = lines[start + 1:] if lines[start] == "chaos-events: invalid scenario:" else lines[start:]
    assert lines, "no error message"
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


@pytest.mark.slow   # about 80-100 s: three processes per case
@settings(max_examples=20, derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(mutated_files())
def test_validate_dry_run_and_locust_agree_on_a_hostile_scenario(case):
    base, kind, text = case
    with tempfile.TemporaryDirectory(prefix="parity-") as directory:
        tmp = Path(directory)
        scenario = tmp / "scenario.yml"
        scenario.write_bytes(text.encode("utf-8", "surrogatepass"))  # a lone surrogate stays bad UTF-8 on disk
        (tmp / "lf.py").write_text(textwrap.dedent(LOCUSTFILE))
        try:
            parse_plan(scenario.read_text(encoding="utf-8"), str(scenario), environ=ENV)
            valid = True
        except (PlanError, UnicodeDecodeError):
            valid = False
        cli = {"validate": [CHAOS_EVENTS, "validate", str(scenario)], "dry-run": [CHAOS_EVENTS, "dry-run", str(scenario)]}
        if valid:
            cli |= {"validate-offline": [CHAOS_EVENTS, "validate", str(scenario), "--no-target-check"],
                    "dry-run-offline": [CHAOS_EVENTS, "dry-run", str(scenario), "--no-target-check"]}
        else:
            cli["locust"] = [LOCUST, "-f", str(tmp / "lf.py"), "--headless", "--chaos-plan", str(scenario), "-u", "1",
                             "-r", "1", "-t", "1s", "--host", f"http://127.0.0.1:{free_port()}",
                             "--chaos-metrics-port", "0", "--chaos-journal", str(tmp / "journal.json"),
                             "--chaos-report-dir", str(tmp / "reports")]
        results = _run_all(cli, tmp)
        reported = (tmp / "reports" / "chaos-report.json").exists() or (tmp / "journal.json").exists()
    context = f"{base} ({kind}):\n{text[:1500]}\n" + "\n".join(f"--- {n}: exit {r[0]}\n{r[2][-1500:]}" for n, r in results.items())
    codes = {name: code for name, (code, _, _) in results.items()}
    if valid:
        assert codes["validate-offline"] == 0 and codes["dry-run-offline"] == 0, context
        assert results["validate-offline"][1].startswith("ok: "), context
        assert codes["validate"] == codes["dry-run"], context
        if codes["validate"] != 0:
            assert _first_error(results["validate"][2]) == _first_error(results["dry-run"][2]), context
        return
    assert codes == {"validate": 2, "dry-run": 2, "locust": 2}, context
    first = _first_error(results["validate"][2])
    assert first.startswith(str(scenario)), context
    assert _first_error(results["dry-run"][2]) == first, context
    assert _first_error(results["locust"][2], locust=True) == first, context
    assert not reported, f"Locust started a run (a report or a journal) for a refused scenario\n{context}"


def test_a_container_name_docker_cannot_look_up_is_bad_input_everywhere(tmp_path):
    """Found by the same mutations: `name: "/"` made docker-py raise a bare Exception (an internal error in the CLI,
    a traceback in Locust). Now the loader refuses it as Docker's own rule would, before any engine is asked."""
    scenario = tmp_path / "scenario.yml"
    scenario.write_text('name: t\ntargets:\n  api: {container: {name: "/"}}\n')
    (tmp_path / "lf.py").write_text(textwrap.dedent(LOCUSTFILE))
    results = _run_all({"validate": [CHAOS_EVENTS, "validate", str(scenario)],
                        "locust": [LOCUST, "-f", str(tmp_path / "lf.py"), "--headless", "--chaos-plan", str(scenario),
                                   "-u", "1", "-r", "1", "-t", "1s", "--host", f"http://127.0.0.1:{free_port()}",
                                   "--chaos-metrics-port", "0", "--chaos-journal", str(tmp_path / "journal.json"),
                                   "--chaos-report-dir", str(tmp_path / "reports")]}, tmp_path)
    expected = (f"{scenario}:3 targets.api (container): 'name': expected a container name (a letter or digit, then "
                "letters, digits, _ . -); got '/'")
    assert [code for code, _, _ in results.values()] == [2, 2], results
    assert _first_error(results["validate"][2]) == expected
    assert _first_error(results["locust"][2], locust=True) == expected
