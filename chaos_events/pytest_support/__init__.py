"""The pytest plugin's parts (chaos_events.pytest_plugin is the entry point, with the hooks and fixtures):
- `target.py`   ChaosTarget, the platform a chaos test runs against (the user's, or a demo started for the test);
- `result.py`   ChaosResult and its views of chaos-report.json (SLOs, phases, fault events, observations);
- `runner.py`   ChaosRunner, one headless Locust subprocess per scenario, following the run's event stream.

Like the plugin: pytest, the standard library, PyYAML and the harness's pure core; never locust, gevent, docker or
prometheus_client (Locust runs as a subprocess, ended by its pid).
"""
