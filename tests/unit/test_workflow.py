"""Static checks of .github/workflows/chaos.yml: valid YAML, the README's commands, reports always uploaded.

GitHub Actions cannot run here, so this checks the structure that matters: Python 3.11, `make test` and a headless
`make demo` game day, and an upload of reports/ that runs even when the game day fails (if: always()).
"""
from __future__ import annotations

import re

import pytest
import yaml

from tests.helpers import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "chaos.yml"
MAKEFILE = ROOT / "Makefile"


@pytest.fixture(scope="module")
def workflow() -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(doc, dict), "the workflow is not a YAML mapping"
    return doc


def _steps(workflow):
    return [(job_name, step) for job_name, job in workflow["jobs"].items() for step in job["steps"]]


def _runs(workflow, job_name=None):
    return [step.get("run", "") for name, step in _steps(workflow) if job_name in (None, name)]


def test_workflow_has_triggers_and_jobs(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert triggers and {"push", "pull_request"} <= set(triggers)
    assert workflow["jobs"], "no jobs"
    for name, job in workflow["jobs"].items():
        assert job["runs-on"], name
        assert job["steps"], name
        assert job.get("timeout-minutes"), f"{name}: a hung game day must not hold a runner for 6 hours"


def test_every_job_checks_out_and_sets_up_python_311(workflow):
    for name, job in workflow["jobs"].items():
        uses = [step.get("uses", "") for step in job["steps"]]
        assert any(u.startswith("actions/checkout@") for u in uses), name
        (setup,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert str(setup["with"]["python-version"]) == "3.11", name


def test_runs_the_readme_commands(workflow):
    runs = "\n".join(_runs(workflow))
    assert re.search(r"^\s*make test\b", runs, re.M), "no `make test`"
    assert re.search(r"^\s*make demo\b", runs, re.M), "no `make demo` game day"
    makefile = MAKEFILE.read_text()
    for target in ("test", "demo"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no `{target}` target"


def test_game_day_runs_after_tests_and_is_headless(workflow):
    (gameday,) = [name for name in workflow["jobs"] if any(re.search(r"^\s*make demo\b", r, re.M) for r in _runs(workflow, name))]
    assert workflow["jobs"][gameday].get("needs") == "test"
    # `make demo` is `python -m chaos_events.demo gameday`, which runs Locust --headless; the workflow passes only env.
    makefile = MAKEFILE.read_text()
    assert re.search(r"^demo:.*\n\t.*-m chaos_events.demo gameday", makefile, re.M)
    for _, step in _steps(workflow):
        assert "${{ inputs." not in step.get("run", ""), "workflow inputs must reach the shell through env"


def test_reports_are_uploaded_even_on_failure(workflow):
    uploads = [(name, s) for name, s in _steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert uploads, "no upload-artifact step"
    gameday_uploads = [s for name, s in uploads if any("make demo" in r for r in _runs(workflow, name))]
    assert gameday_uploads, "the game day's reports are not uploaded"
    for step in gameday_uploads:
        assert step.get("if") == "always()", "reports must be uploaded when the verdict fails the job"
        assert "reports/" in step["with"]["path"].split()


def test_upload_steps_come_after_the_commands_they_upload(workflow):
    for name, job in workflow["jobs"].items():
        kinds = ["make" if re.search(r"^\s*make ", s.get("run", ""), re.M) else
                 "upload" if s.get("uses", "").startswith("actions/upload-artifact@") else "other" for s in job["steps"]]
        if "upload" in kinds and "make" in kinds:
            assert max(i for i, k in enumerate(kinds) if k == "make") < min(i for i, k in enumerate(kinds) if k == "upload"), name
