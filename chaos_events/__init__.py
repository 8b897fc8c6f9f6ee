"""chaos-events: load plus chaos on Locust. `import chaos_events` in a locustfile turns the whole harness on.

Outside a Locust process (the CLI, unit tests) importing the package loads nothing of Locust.
"""
import sys

__version__ = "0.1.0"
__all__ = ["__version__"]

# Locust imports itself before it loads the locustfile, so its presence means we run inside Locust.
if "locust" in sys.modules:
    from . import plugin as _plugin  # noqa: F401  (registers the event listeners)
