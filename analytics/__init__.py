"""Analytics: replay events into a pseudonymous read model, simulate other routing, report.

    replay(settings, topics, start, end, into) -> ReplayStats   events -> MongoDB read model
    what_if(settings, start=, end=, ...) -> WhatIfReport          decisions and callbacks, redone
    run_report(settings, read_model_db, out_dir) -> Report        tables, CSV files, PNG charts

Analysts see pseudonymous ids and facts, never contact details, names or free text
(`analytics.readmodel`). Nothing here joins the services' consumer groups or writes to their
database. The pure cores (`build_report`, `compare`, `simulate`) take plain data.
"""

# `replay` names both the function (exported here) and its module: `from analytics.replay import
# replay` works, but `import analytics.replay as m` gives the function; use importlib for the module.
from analytics.readmodel import KEPT_FIELDS, document_from_record, to_document
from analytics.replay import ReplayStats, replay
from analytics.report import Report, ReportConfig, ReportTable, build_report, run_report
from analytics.settings import AnalyticsSettings
from analytics.simulation import QueueModel, SimRequest, SlaSummary, simulate, sla_summary
from analytics.whatif import Scenario, ScenarioOutcome, WhatIfReport, compare, roster_team_sizes, what_if

__all__ = [
    "KEPT_FIELDS",
    "AnalyticsSettings",
    "QueueModel",
    "ReplayStats",
    "Report",
    "ReportConfig",
    "ReportTable",
    "Scenario",
    "ScenarioOutcome",
    "SimRequest",
    "SlaSummary",
    "WhatIfReport",
    "build_report",
    "compare",
    "document_from_record",
    "replay",
    "roster_team_sizes",
    "run_report",
    "simulate",
    "sla_summary",
    "to_document",
    "what_if",
]
