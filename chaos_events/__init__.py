"""chaos-events: load plus chaos on Locust. `import chaos_events` in a locustfile turns the whole harness on.

Outside a Locust process (the CLI, unit tests, the demo) importing the package loads nothing of Locust, gevent,
docker or prometheus_client: the public names below are pure.
"""
import sys

from chaos_events.errors import ChaosError, ExitCode, InjectionError, PlanError, Problem, RevertError, SafetyError
from chaos_events.load.acks import acknowledge
from chaos_events.scenario.loader import load_plan, parse_plan
from chaos_events.scenario.model import Plan
from chaos_events.verdict.slo import evaluate

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "acknowledge",
    "load_plan", "parse_plan", "Plan", "evaluate", "ExitCode",
    "ChaosError", "PlanError", "Problem", "SafetyError", "InjectionError", "RevertError",
]

# Locust imports itself before it loads the locustfile, so its presence means we run inside Locust.
if "locust" in sys.modules:
    from chaos_events.locust_plugin import wiring as _wiring  # noqa: F401  (registers the event listeners)
