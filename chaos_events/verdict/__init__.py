"""The verdict: phases of a run, SLO judgements (one metric family per module, each metric's parameters declared
next to its function), the exit code, and the reports.

Pure core (the report writers aside, which write files): no gevent, locust, docker, prometheus_client or scipy.
It takes a Plan and a Record and returns results, so it is tested without a load run. Import from the modules
themselves (`chaos_events.verdict.slo.evaluate`); this file imports nothing, so importing one never drags in all.
"""
