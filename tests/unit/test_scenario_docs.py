"""The shipped scenario docs are generated from the models the loader validates with, and stay current: the JSON
Schema (docs/scenario.schema.json, for editors) and the reference (docs/SCENARIOS.md)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from chaos_events.errors import PlanError
from chaos_events.scenario.loader import parse_plan
from chaos_events.scenario.schema import reference_markdown, scenario_schema

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted([*ROOT.glob("scenarios/*.yml"), *ROOT.glob("tests/*/scenarios/*.yml")])


@pytest.fixture(scope="module")
def validator():
    schema = scenario_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schema_and_reference_are_current():
    shipped = json.loads((ROOT / "docs" / "scenario.schema.json").read_text())
    assert shipped == scenario_schema(), "docs/scenario.schema.json is stale: chaos-events schema --out docs/scenario.schema.json"
    assert (ROOT / "docs" / "SCENARIOS.md").read_text() == reference_markdown(), \
        "docs/SCENARIOS.md is stale: chaos-events reference --out docs/SCENARIOS.md"


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_scenario_the_project_ships_is_valid_under_the_schema(path, validator):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


def test_the_schema_refuses_what_the_loader_refuses(validator):
    # One mistake per document, each one the loader reports too: the schema is not a rubber stamp.
    base = {"name": "x", "targets": {"t": {"process": {"pidfile": "/tmp/p.pid"}}},
            "faults": [{"at": "1s", "for": "1s", "fault": "pause", "target": "t"}]}
    bad = [
        {**base, "halt_when": [{"error_rate": {"max": "5%", "for": "2s", "bogus": 1}}]},
        {**base, "on_halt": "explode"},
        {**base, "faults": [{**base["faults"][0], "fault": "no_such_fault"}]},
        {**base, "unknown_top": 1},
    ]
    for doc in bad:
        assert list(validator.iter_errors(doc)), doc
        with pytest.raises(PlanError):
            parse_plan(yaml.safe_dump(doc), "doc.yml")
    assert list(validator.iter_errors(base)) == []
