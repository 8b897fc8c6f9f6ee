"""One run: the session that owns it, the timeline of steps, the engine that injects and reverts, the revert journal
and the watchdog that outlives a killed harness.

Must not import locust; gevent arrives only through the hooks the Locust plugin lends the session.
"""
