"""chaos-events: load plus chaos on Locust. `import chaos_events` in a locustfile turns the whole harness on.

Outside a Locust process (the CLI, unit tests, the demo) importing the package loads nothing of Locust, gevent,
docker or prometheus_client: the public names below are pure.
"""
import sys

from .acks import acknowledge
from .errors import ChaosError, InjectionError, PlanError, Problem, RevertError, SafetyError
from .plan import Plan, load_plan, parse_plan

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "acknowledge",
    "load_plan", "parse_plan", "Plan",
    "ChaosError", "PlanError", "Problem", "SafetyError", "InjectionError", "RevertError",
]

# Locust imports itself before it loads the locustfile, so its presence means we run inside Locust.
if "locust" in sys.modules:
    from . import plugin as _plugin  # noqa: F401  (registers the event listeners)
