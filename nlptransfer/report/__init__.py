"""Did transfer help? A from-scratch baseline, the three transfer indicators, paired statistics, a verdict,
and the HTML/Markdown report; `compare` puts several strategies side by side."""
from .build import ReportPlan, build_report, plan
from .compare import compare_strategies

__all__ = ["build_report", "plan", "ReportPlan", "compare_strategies"]
