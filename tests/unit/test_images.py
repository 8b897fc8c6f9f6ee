"""The image builder's pure parts: which apt mirror it reads from the machine, what goes into each image's hash,
and which files the harness image's build context holds. (The builds themselves run in
tests/integration/test_compose_gameday.py.)
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from chaos_events.demo import images


def _sources(tmp_path: Path, deb822: str = "", one_line: str = "", list_d: str = "") -> tuple[Path, Path]:
    sources_d = tmp_path / "sources.list.d"
    sources_d.mkdir()
    if deb822:
        (sources_d / "debian.sources").write_text(deb822)
    if list_d:
        (sources_d / "extra.list").write_text(list_d)
    sources_list = tmp_path / "sources.list"
    if one_line:
        sources_list.write_text(one_line)
    return sources_d, sources_list


DEB822 = """\
Types: deb
# http://snapshot.example.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
"""


def test_the_mirror_is_the_deb822_source_that_serves_bookworm_itself(tmp_path):
    sources = images.apt_sources(*_sources(tmp_path, deb822=DEB822))
    assert sources == [("http://mirror.example.org/debian", ["bookworm", "bookworm-updates"]),
                       ("http://mirror.example.org/debian-security", ["bookworm-security"])]
    assert images.debian_mirror(sources) == "http://mirror.example.org/debian"


def test_one_line_sources_options_comments_and_disabled_entries(tmp_path):
    one_line = ("# deb http://commented.example.org/debian bookworm main\n"
                "deb-src http://src.example.org/debian bookworm main\n"
                "deb [arch=amd64 signed-by=/k.gpg] http://security.example.org/debian-security bookworm-security main\n"
                "deb [arch=amd64] http://plain.example.org/debian bookworm main # a comment\n")
    disabled = "Types: deb\nURIs: http://off.example.org/debian\nSuites: bookworm\nEnabled: no\n"
    sources = images.apt_sources(*_sources(tmp_path, deb822=disabled, one_line=one_line))
    assert images.debian_mirror(sources) == "http://plain.example.org/debian"
    assert "http://off.example.org/debian" not in [uri for uri, _ in sources]


def test_no_bookworm_source_is_a_clear_error(tmp_path):
    sources = images.apt_sources(*_sources(tmp_path, one_line="deb http://x.example.org/debian trixie main\n"))
    with pytest.raises(images.ImageError, match=r"no apt source of this machine serves Debian bookworm.*--registry"):
        images.debian_mirror(sources)


def test_the_mirror_is_never_written_into_the_repository():
    # Read at run time only: no URL with a host name (a registry's, a mirror's) in the builder or the recipes.
    for path in [Path(images.__file__), *images.RECIPES.rglob("*")]:
        if path.is_file():
            assert not re.findall(r"\w+://[A-Za-z][\w.-]*", path.read_text(errors="replace")), path


def test_dockerignore_patterns_select_the_build_context(tmp_path):
    for rel in ("pyproject.toml", "chaos_events/x.py", "chaos_events/__pycache__/x.pyc", "chaos_events/y.pyc",
                ".venv/bin/python", "reports/chaos-report.json", "bench/results/a.json", "bench/run.py",
                "pkg.egg-info/PKG-INFO", "docker-compose.locust.yml", "scenarios/a.yml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / ".dockerignore").write_text("# comment\n.venv\n**/__pycache__\n**/*.pyc\nreports\nbench/results\n"
                                            "*.egg-info\ndocker-compose*.yml\n.dockerignore\n")
    kept = sorted(p.relative_to(tmp_path).as_posix() for p in images.context_files(tmp_path))
    assert kept == ["bench/run.py", "chaos_events/x.py", "pyproject.toml", "scenarios/a.yml"]


def test_the_harness_context_is_the_repository_minus_local_state():
    files = {p.relative_to(images.ROOT).as_posix() for p in images.context_files(images.ROOT)}
    assert "pyproject.toml" in files and "locustfiles/platform.py" in files and "chaos_events/demo/images.py" in files
    assert not [f for f in files if f.startswith((".venv/", ".git/", ".run/", "reports/", "dashboards/"))]


def test_the_inputs_hash_follows_content_names_modes_and_extras(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "ROOT", tmp_path)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one")
    b.write_text("two")
    first = images.inputs_hash([a, b], "base-1")
    assert images.inputs_hash([b, a], "base-1") == first  # order of the list does not matter
    assert images.inputs_hash([a, b], "base-2") != first
    a.write_text("ONE")
    assert images.inputs_hash([a, b], "base-1") != first
    a.write_text("one")
    os.chmod(a, 0o755)
    assert images.inputs_hash([a, b], "base-1") != first
    os.chmod(a, 0o644)
    assert images.inputs_hash([a, b], "base-1") == first


def test_the_prometheus_context_carries_the_projects_rules_and_config(tmp_path):
    recipe = images.prometheus_recipe()
    context = recipe.stage(tmp_path)
    staged = sorted(p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file())
    assert staged == ["Dockerfile", "entrypoint.sh", "prometheus/alerts.yml", "prometheus/prometheus.yml"]
    assert (context / "prometheus" / "alerts.yml").read_text() == (images.ROOT / "dashboards/prometheus/alerts.yml").read_text()
    assert os.access(context / "entrypoint.sh", os.X_OK)


def test_the_base_tag_is_its_recipe_hash():
    tag = images.base_tag()
    assert tag.startswith(images.BASE_REPO + ":") and len(tag.split(":")[1]) == 16
    assert images.base_tag() == tag


def test_recipes_build_from_a_base_argument():
    # Every recipe's Dockerfile takes BASE_IMAGE, which is how the same file builds with or without a registry.
    for dockerfile in [images.ROOT / "Dockerfile", *images.RECIPES.glob("*/Dockerfile")]:
        lines = [l for l in dockerfile.read_text().splitlines() if l and not l.startswith("#")]
        assert lines[0].startswith("ARG BASE_IMAGE=") and lines[1] == "FROM ${BASE_IMAGE}", dockerfile


def _fake_jar_cache(home: Path) -> Path:
    from chaos_events.demo import kafka_dist

    libs = home / kafka_dist.pinned_version() / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-x.jar").write_bytes(b"PK fake jar")
    (libs / kafka_dist.MANIFEST).write_text(json.dumps({"version": kafka_dist.pinned_version(),
                                                         "pom_sha256": kafka_dist._pom_hash(), "jars": ["kafka_2.13-x.jar"]}))
    return libs


def test_the_kafka_image_needs_the_fetched_jars(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOS_KAFKA_HOME", str(tmp_path / "empty"))
    with pytest.raises(images.ImageError, match=r"jars are not \(all\) in .*python -m chaos_events.demo fetch-kafka"):
        images.kafka_recipe()


def test_the_kafka_context_has_the_jars_the_package_and_no_local_state(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOS_KAFKA_HOME", str(tmp_path / "cache"))
    libs = _fake_jar_cache(tmp_path / "cache")
    recipe = images.kafka_recipe()
    assert recipe.build_args == {"KAFKA_VERSION": libs.parent.name}
    (tmp_path / "context").mkdir()
    context = recipe.stage(tmp_path / "context")
    staged = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    assert {"Dockerfile", "pyproject.toml", "chaos_events/demo/kafka_node.py", "chaos_events/demo/kafka/pom.xml",
            "libs/kafka_2.13-x.jar", "libs/chaos-events-manifest.json"} <= staged
    assert not [f for f in staged if "__pycache__" in f or f.endswith(".pyc")]
    # A changed jar is a changed image.
    before = images.recipe_hash(recipe, "base")
    (libs / "kafka_2.13-x.jar").write_bytes(b"PK another jar")
    assert images.recipe_hash(images.kafka_recipe(), "base") != before
