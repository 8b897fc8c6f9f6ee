"""Fault families, one module each (service, network, resources, data, kafka_isolate), registered by name on import.

Must not import locust, gevent, docker or prometheus_client at module level.
"""
from chaos_events.faults.base import Fault, FaultContext, FaultParams, build_params, fault_type, known_fault_types, register
from chaos_events.faults import data, kafka_isolate, network, resources, service  # noqa: F401  (registration happens on import)

__all__ = ["Fault", "FaultContext", "FaultParams", "build_params", "fault_type", "known_fault_types", "register"]
