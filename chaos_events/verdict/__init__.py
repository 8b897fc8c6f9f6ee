"""The verdict: phases of a run, SLO judgements, the exit code, and the reports.

Pure core (report.py aside, which writes files, and documents.py, which renders Jinja2 templates): standard
library only; no gevent, locust, docker, prometheus_client
or scipy. It takes a Plan and a Record and returns results, so it is tested without a load run.
"""
from chaos_events.verdict.phases import PhaseSpan, current_phase, derive_phases, fault_occurrences
from chaos_events.verdict.console import format_verdict_table, progress_line
from chaos_events.verdict.report import load_record, report_from_files, write_reports
from chaos_events.verdict.slo import SloResult, SloStatus, Verdict, evaluate

__all__ = [
    "PhaseSpan", "derive_phases", "current_phase", "fault_occurrences",
    "SloStatus", "SloResult", "Verdict", "evaluate",
    "write_reports", "format_verdict_table", "progress_line", "load_record", "report_from_files",
]
