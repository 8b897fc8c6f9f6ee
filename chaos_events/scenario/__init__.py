"""The scenario: a YAML file turned into a validated, typed Plan, and the checks that decide whether it may run.

Layers, bottom up: `units` and `fields` (value types), `document` (YAML -> plain values with lines), the models
(`model`, `targets`, `probe_kinds`; faults and SLO metrics declare theirs next to their code), `loader` (document ->
Plan), `overlaps`, `safety` (production guard, allow-lists), `preflight` (the pre-run look at this machine) and
`schema` (JSON Schema and the reference, generated from the models). Import from the modules themselves; this
file imports nothing, so that importing any one of them never drags in the others.

Pure, but for reading the scenario file and the pre-run look at this machine: no gevent, locust, docker (but lazily,
for container targets) or prometheus_client.
"""
