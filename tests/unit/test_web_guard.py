"""The web UI's safety rules (chaos_events/locust_plugin/web_guard.py): loopback hosts, the --web-host refusal, the
same-origin check and its Flask hook, scenario path containment, and telling a given --web-host from Locust's
default through Locust's real parser (command line, LOCUST_WEB_HOST, locust.conf).

The running Locust (default bind, exit 2, 403 and the refused scenario path over HTTP) is tests/integration/test_webui_safety.py.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask

from chaos_events.locust_plugin.web_guard import (cross_origin_refusal, is_loopback_host, refuse_cross_origin_writes,
                                                  same_origin, scenario_directory, scenario_path_refusal,
                                                  web_host_given, web_host_refusal)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.255.255.254", "localhost", "LOCALHOST", "localhost.",
                                  "::1", "[::1]", "::ffff:127.0.0.1", " 127.0.0.1 "])
def test_loopback_hosts(host):
    assert is_loopback_host(host) is True


# Strings for the classifier only: nothing here binds or connects. The non-loopback examples are documentation
# addresses (RFC 5737), which no network routes; 128.0.0.1 is the first address past 127.0.0.0/8.
@pytest.mark.parametrize("host", ["0.0.0.0", "", "*", "::", "[::]", "192.0.2.1", "198.51.100.5", "128.0.0.1",
                                  "example.com", "localhost.example.com", "::ffff:192.0.2.1"])
def test_not_loopback_hosts(host):
    assert is_loopback_host(host) is False


def test_a_non_loopback_web_host_without_login_is_refused_in_one_line():
    assert web_host_refusal("0.0.0.0", web_login=False) == (
        "--web-host 0.0.0.0: a web UI reachable from other machines can start and abort chaos, so it needs "
        "--web-login; add --web-login (and a login_manager.user_loader in the locustfile) or use --web-host 127.0.0.1")
    assert web_host_refusal("*", web_login=False).startswith("--web-host * (all interfaces): ")
    assert web_host_refusal("", web_login=False).startswith("--web-host '' (all interfaces): ")
    assert "\n" not in web_host_refusal("203.0.113.3", web_login=False)


def test_loopback_or_login_is_accepted():
    assert web_host_refusal("127.0.0.1", web_login=False) is None
    assert web_host_refusal("::1", web_login=False) is None
    assert web_host_refusal("0.0.0.0", web_login=True) is None


@pytest.mark.parametrize("source, host, scheme", [
    ("http://127.0.0.1:8089", "127.0.0.1:8089", "http"),
    ("http://127.0.0.1:8089/chaos/", "127.0.0.1:8089", "http"),      # a Referer carries a path
    ("http://LocalHost:8089", "localhost:8089", "http"),
    ("http://example.test", "example.test:80", "http"),               # default ports on either side
    ("https://example.test:443", "example.test", "https"),
    ("http://[::1]:8089", "[::1]:8089", "http"),
])
def test_same_origin(source, host, scheme):
    assert same_origin(source, host, scheme) is True


@pytest.mark.parametrize("source, host, scheme", [
    ("http://evil.example", "127.0.0.1:8089", "http"),
    ("http://127.0.0.1:8090", "127.0.0.1:8089", "http"),              # another port is another origin
    ("http://127.0.0.1", "127.0.0.1:8089", "http"),
    ("https://example.test", "example.test", "http"),                 # 443 is not 80
    ("http://127.0.0.1.evil.example:8089", "127.0.0.1:8089", "http"),
    ("null", "127.0.0.1:8089", "http"),                               # sandboxed frames and file: pages
    ("file:///tmp/x.html", "127.0.0.1:8089", "http"),
    ("http://127.0.0.1:notaport", "127.0.0.1:8089", "http"),
    ("http://127.0.0.1:8089", "", "http"),
])
def test_not_same_origin(source, host, scheme):
    assert same_origin(source, host, scheme) is False


def test_cross_origin_writes_are_refused_and_reads_and_curl_are_not():
    host = "127.0.0.1:8089"
    assert cross_origin_refusal("GET", "http://evil.example", None, host, "http") is None
    assert cross_origin_refusal("OPTIONS", "http://evil.example", None, host, "http") is None
    assert cross_origin_refusal("POST", None, None, host, "http") is None                 # curl, scripts
    assert cross_origin_refusal("POST", "http://127.0.0.1:8089", None, host, "http") is None
    assert cross_origin_refusal("POST", "http://evil.example", None, host, "http") == (
        "cross-origin request refused: Origin 'http://evil.example' does not match this web UI's host "
        "'127.0.0.1:8089'; state-changing requests must come from the web UI's own pages (or from a client that "
        "sends neither Origin nor Referer, such as curl)")
    # Without Origin the Referer decides; with Origin, Origin does.
    assert cross_origin_refusal("DELETE", None, "http://evil.example/page", host, "http").startswith(
        "cross-origin request refused: Referer 'http://evil.example/page' does not match")
    assert cross_origin_refusal("POST", None, "http://127.0.0.1:8089/chaos/", host, "http") is None
    assert cross_origin_refusal("POST", "null", "http://127.0.0.1:8089/", host, "http").startswith(
        "cross-origin request refused: Origin 'null'")


def test_the_flask_hook_refuses_before_the_view_runs():
    app = Flask(__name__)
    refuse_cross_origin_writes(app)
    calls = []

    @app.route("/act", methods=["GET", "POST"])
    def act():
        calls.append(1)
        return {"ok": True}

    client = app.test_client()
    base = {"base_url": "http://127.0.0.1:8089"}
    resp = client.post("/act", headers={"Origin": "http://evil.example"}, **base)
    assert resp.status_code == 403 and resp.get_json()["ok"] is False and resp.get_json()["success"] is False
    assert resp.get_json()["message"].startswith("cross-origin request refused: Origin 'http://evil.example'")
    assert calls == []
    assert client.get("/act", headers={"Origin": "http://evil.example"}, **base).status_code == 200
    assert client.post("/act", **base).status_code == 200
    assert client.post("/act", headers={"Origin": "http://127.0.0.1:8089"}, **base).status_code == 200
    assert len(calls) == 3


# -- scenario paths ------------------------------------------------------------------------------------------------
def test_scenario_directory_is_the_startup_plans_or_scenarios(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plans").mkdir()
    assert scenario_directory("plans/a.yml") == (tmp_path.resolve() / "plans", "the directory of --chaos-plan")
    assert scenario_directory("a.yml") == (tmp_path.resolve(), "the directory of --chaos-plan")
    assert scenario_directory("") == (tmp_path.resolve() / "scenarios",
                                      "scenarios/, as Locust started without --chaos-plan")


def test_scenario_paths_must_resolve_under_the_directory(tmp_path, monkeypatch):
    base = tmp_path / "scenarios"
    (base / "sub").mkdir(parents=True)
    (base / "a.yml").write_text("name: a\n")
    outside = tmp_path / "outside.yml"
    outside.write_text("name: out\n")
    os.symlink(outside, base / "link.yml")
    monkeypatch.chdir(tmp_path)
    directory = base.resolve()
    origin = "the directory of --chaos-plan"
    for ok in ("", None, "scenarios/a.yml", str(base / "a.yml"), "scenarios/sub/../a.yml", "scenarios/sub/new.yml"):
        assert scenario_path_refusal(ok, directory, origin) is None, ok
    assert scenario_path_refusal("scenarios/../outside.yml", directory, origin) == (
        f"Scenario refused, run not started: chaos_plan 'scenarios/../outside.yml' resolves to {outside.resolve()}, "
        f"outside the scenario directory {directory} (the directory of --chaos-plan); "
        "choose a scenario file under that directory")
    for refused in ("/etc/passwd", "scenarios/link.yml", "scenarios", str(tmp_path / "scenarios-evil" / "a.yml"),
                    "../../../../etc/passwd"):
        message = scenario_path_refusal(refused, directory, origin)
        assert message is not None and message.startswith(f"Scenario refused, run not started: chaos_plan {refused!r}")


# -- was --web-host given? Locust's own parser, as in a real run -----------------------------------------------------
@pytest.fixture
def locust_parser(tmp_path, monkeypatch):
    from locust.argument_parser import get_parser

    monkeypatch.chdir(tmp_path)  # locust.conf and pyproject.toml are read from the working directory
    monkeypatch.delenv("LOCUST_WEB_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # and ~/.locust.conf
    return get_parser


def test_web_host_not_given(locust_parser):
    assert web_host_given(locust_parser, ["-f", "lf.py", "--web-port", "8090"]) is False


@pytest.mark.parametrize("argv", [["--web-host", "0.0.0.0"], ["--web-host=127.0.0.1"], ["--web-host", ""],
                                  ["--web-host", "*", "--web-port", "8090"]])
def test_web_host_given_on_the_command_line(locust_parser, argv):
    assert web_host_given(locust_parser, argv) is True


def test_web_host_given_in_the_environment(locust_parser, monkeypatch):
    monkeypatch.setenv("LOCUST_WEB_HOST", "0.0.0.0")
    assert web_host_given(locust_parser, []) is True


def test_web_host_given_in_locust_conf(locust_parser, tmp_path):
    Path("locust.conf").write_text("web-host = 192.0.2.1\n")
    assert web_host_given(locust_parser, []) is True
    Path("locust.conf").write_text("web-port = 8090\n")
    assert web_host_given(locust_parser, []) is False


def test_web_host_unknown_when_the_command_line_does_not_parse(locust_parser):
    assert web_host_given(locust_parser, ["--web-port", "not-a-number"]) is None
