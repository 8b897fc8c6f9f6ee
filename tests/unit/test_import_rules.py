"""The import rules of docs/ARCHITECTURE.md, enforced on the source: a pure core and thin adapters.

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
# The pure core: the scenario model and loader, the timeline, the record and the verdict (reports included).
PURE_CORE = sorted(
    [p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "scenario").glob("*.py") if p.name != "preflight.py"]
    + [p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "verdict").glob("*.py")]
    + ["run/timeline.py", "record.py", "errors.py", "load/corrupt.py", "load/payloads.py", "load/arrival_rate.py", "atomic.py"])


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


def test_only_the_locust_plugin_imports_locust():
    importers = {_rel(p) for p in _modules() if "locust" in _imports(p)}
    assert importers and all(name.startswith("locust_plugin/") for name in importers), importers


def _package_imports(path: Path) -> set[str]:
    """The chaos_events modules a module imports, anywhere in it (top level, functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("chaos_events")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("chaos_events"):
            found.add(node.module)
            # `from chaos_events.verdict import stats` imports the module chaos_events.verdict.stats
            found |= {f"{node.module}.{a.name}" for a in node.names if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()}
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_import_graph_of_the_package_is_acyclic():
    modules = {_module_name(p): p for p in _modules()}
    graph = {name: {m for m in _package_imports(path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    cycle: list[str] = []

    def visit(name: str, path: list[str]) -> bool:
        state[name] = 1
        for nxt in sorted(graph[name]):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [nxt] if nxt in path else [name, nxt])
                return True
            if nxt not in state and visit(nxt, path + [nxt]):
                return True
        state[name] = 2
        return False

    for name in sorted(graph):
        if name not in state and visit(name, [name]):
            break
    assert not cycle, "import circle: " + " -> ".join(cycle)


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
    import chaos_events.verdict.slo

    assert sorted(chaos_events.__all__) == sorted([
        "__version__", "acknowledge", "load_plan", "parse_plan", "Plan", "evaluate", "ExitCode",
        "ChaosError", "PlanError", "Problem", "SafetyError", "InjectionError", "RevertError"])
    assert sorted(chaos_events.faults.__all__) == sorted(
        ["Fault", "FaultContext", "FaultParams", "build_params", "fault_type", "known_fault_types", "register"])
    assert sorted(chaos_events.verdict.slo.__all__) == sorted(
        ["evaluate", "evaluate_slo", "completeness", "Missing", "SloResult", "SloStatus", "Verdict"])
    for module in (chaos_events, chaos_events.faults, chaos_events.verdict.slo):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.__all__ names a missing {name}"
