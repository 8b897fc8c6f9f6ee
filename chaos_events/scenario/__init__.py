"""The scenario: a YAML file turned into a validated, typed Plan, and the checks that decide whether it may run.

Pure, but for reading the scenario file and the pre-run look at this machine: no gevent, locust, docker (but lazily,
for container targets) or prometheus_client.
"""
