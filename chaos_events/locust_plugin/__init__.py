"""The Locust adapters: event wiring, command-line options, the Kafka user and the web UI's chaos view.

The only subpackage that imports locust. `import chaos_events` inside a Locust process loads `wiring`.
"""
