"""The house import rules (STYLE.md), enforced on the source: a pure core and thin adapters.

Each rule reads the modules' syntax trees, so a violation anywhere in a file (top level or inside a function) is seen.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "chaos_events"
HEAVY = {"gevent", "locust", "docker", "prometheus_client"}
PURE_CORE = ["scenario/plan.py", "run/timeline.py", "record.py", "scenario/units.py", "errors.py", "load/corrupt.py", "load/payloads.py", "atomic.py",
             "verdict/__init__.py", "verdict/phases.py", "verdict/slo.py", "verdict/stats.py", "verdict/report.py"]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize("module", PURE_CORE)
def test_pure_core_imports_nothing_heavy(module):
    assert not (_imports(PACKAGE / module) & HEAVY), f"{module} must stay pure"


def test_only_plugin_and_users_import_locust():
    importers = {_rel(p) for p in _modules() if "locust" in _imports(p)}
    assert importers <= {"locust_plugin/wiring.py", "locust_plugin/users.py"}, importers


def test_only_the_exporter_imports_prometheus_client():
    assert {_rel(p) for p in _modules() if "prometheus_client" in _imports(p)} == {"observe/exporter.py"}


def test_only_the_docker_backend_imports_docker_and_only_lazily():
    assert {_rel(p) for p in _modules() if "docker" in _imports(p)} <= {"backends/docker.py"}
    assert "docker" not in _imports(PACKAGE / "backends/docker.py", top_level_only=True)


def test_fault_families_import_nothing_heavy_at_module_level():
    for path in sorted((PACKAGE / "faults").glob("*.py")):
        assert not (_imports(path, top_level_only=True) & HEAVY), f"{_rel(path)} imports {_imports(path, True) & HEAVY}"


def test_every_module_starts_with_a_docstring():
    missing = [_rel(p) for p in _modules() if p.stat().st_size and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, f"modules without a docstring: {missing}"


def test_importing_the_package_outside_locust_loads_nothing_heavy():
    # A fresh interpreter: this test process may already have locust (and gevent's patches) loaded.
    code = ("import sys, chaos_events, chaos_events.cli, chaos_events.verdict; "
            "print(sorted(m for m in ('locust', 'gevent', 'docker', 'prometheus_client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_public_api_is_what_we_mean_to_export():
    import chaos_events
    import chaos_events.faults
    import chaos_events.verdict

    assert sorted(chaos_events.__all__) == sorted([
        "__version__", "acknowledge", "load_plan", "parse_plan", "Plan",
        "ChaosError", "PlanError", "Problem", "SafetyError", "InjectionError", "RevertError"])
    assert sorted(chaos_events.faults.__all__) == sorted(
        ["Fault", "FaultContext", "build_params", "fault_type", "known_fault_types", "register"])
    assert sorted(chaos_events.verdict.__all__) == sorted([
        "PhaseSpan", "derive_phases", "current_phase", "fault_occurrences", "SloStatus", "SloResult", "Verdict",
        "evaluate", "write_reports", "format_verdict_table", "progress_line", "load_record", "report_from_files"])
    for module in (chaos_events, chaos_events.faults, chaos_events.verdict):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names a missing {name}"
