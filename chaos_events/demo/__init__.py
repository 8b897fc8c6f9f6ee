"""The demo platform: a small stand-in for an event platform, started as local processes on 127.0.0.1.

Parts: a Kafka broker (Tansu), the harness's TCP fault proxy in front of the broker and the API, a FastAPI
ingest/read API, and a consumer that stores events in SQLite and sends poison messages to a dead-letter topic.
`chaos_events.demo.supervisor.start_platform(run_dir)` starts them all; `python -m chaos_events.demo up|down|status|start-part|gameday`
is the command line. Nothing here imports locust or gevent: the platform is the system under test.
"""
