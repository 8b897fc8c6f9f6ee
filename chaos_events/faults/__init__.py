"""Fault families, one module each (service, network, resources, data), registered by name.

Must not import locust, gevent, docker or prometheus_client at module level.
"""
from chaos_events.faults.base import Fault, FaultContext, build_params, fault_type, known_fault_types, register

__all__ = ["Fault", "FaultContext", "build_params", "fault_type", "known_fault_types", "register"]
