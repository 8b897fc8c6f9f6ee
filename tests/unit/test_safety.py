"""The production guard, the load-host allow-list and the Docker opt-in rule, with their exact messages."""
from __future__ import annotations

import pytest

from chaos_events.errors import SafetyError
from chaos_events.scenario.loader import parse_plan
from chaos_events.scenario.safety import (ALLOW_LABEL, check_environment, check_host, container_allowed,
                                 host_allowed, split_allowed)


@pytest.mark.parametrize("environ", [{}, {"CHAOS_ENVIRONMENT": "staging"}, {"CHAOS_ENV": "dev"}, {"CHAOS_ENV": ""},
                                     {"ENVIRONMENT": "production"}])
def test_non_production_environments_pass(environ):
    check_environment(environ)


@pytest.mark.parametrize("variable, value", [("CHAOS_ENVIRONMENT", "production"), ("CHAOS_ENVIRONMENT", "PROD"),
                                             ("CHAOS_ENV", " Production "), ("CHAOS_ENV", "prod")])
def test_production_is_refused(variable, value):
    with pytest.raises(SafetyError) as info:
        check_environment({variable: value})
    assert str(info.value) == (
        f"refusing to run: {variable}={value.strip()} says this is production; chaos-events never injects faults in "
        f"production. Point the run at a test environment, or unset {variable} if it is wrong.")
    assert info.value.exit_code == 2


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://127.5.6.7", "https://localhost:8443/x", "http://[::1]:8000",
                                 "127.0.0.1:8000", "localhost", "", None])
def test_loopback_and_no_host_are_always_allowed(url):
    check_host(url, ())


def test_allowed_hosts_compare_literally_and_by_network():
    check_host("http://staging.internal:8000", ["staging.internal"])
    check_host("http://STAGING.internal.:8000", ["staging.internal"])
    check_host("http://192.0.2.3:8000", ["192.0.2.0/24"])
    check_host("http://[fd00::5]:80", ["fd00::5"])
    assert not host_allowed("staging.internal.evil.com", ["staging.internal"])
    assert not host_allowed("192.0.2.3", ["192.0.2.30"])


def test_a_host_not_allowed_is_refused():
    with pytest.raises(SafetyError) as info:
        check_host("https://api.example.com/v1", ["127.0.0.1", "staging.internal"])
    assert str(info.value) == (
        "refusing load host 'https://api.example.com/v1': host 'api.example.com' is not allowed; allowed hosts: "
        "127.0.0.0/8, ::1, localhost, staging.internal (add it to settings.allowed_hosts in the scenario or to --chaos-allow)")
    with pytest.raises(SafetyError) as info:
        check_host("http://:80", [])
    assert str(info.value) == "refusing load host 'http://:80': cannot read a host name from it; expected a URL like http://127.0.0.1:8000"


def test_split_allowed():
    assert split_allowed(" a, b ,,c ") == ("a", "b", "c")
    assert split_allowed(["x", " y "]) == ("x", "y")
    assert split_allowed(None) == () and split_allowed("") == ()


def test_container_opt_in_rule():
    assert container_allowed("kafka", {ALLOW_LABEL: "true"}, ())
    assert container_allowed("kafka", {ALLOW_LABEL: "True"}, "")
    assert container_allowed("/kafka", {}, "other,kafka")
    assert not container_allowed("kafka", {ALLOW_LABEL: "yes"}, ())
    assert not container_allowed("kafka", {"app": "kafka"}, "kafka-2")
    assert not container_allowed("kafka", None, None)


def test_plan_helpers():
    plan = parse_plan("name: t\ntargets:\n  a: {container: kafka}\n  b: {container: {label: app=db}}\n  c: {container: zk}\n"
                      "settings: {allowed_hosts: [staging]}\n", "x.yml", extra_allowed="kafka,db.internal", environ={})
    assert plan.allowed_hosts() == ("staging", "kafka", "db.internal")
