"""`nlptransfer report`: the transfer report of a finished run."""
from __future__ import annotations

from .flags import trust_flag


def add_parser(sub) -> None:
    """The `report` verb and its flags."""
    p = sub.add_parser("report", help="did transfer help? write the transfer report of a finished run")
    p.add_argument("run", help="run folder")
    p.add_argument("overrides", nargs="*", metavar="report.key=value", help="report settings, e.g. report.price_per_hour=2")
    trust_flag(p)
    p.set_defaults(func=handle)


def handle(args) -> int:
    """Write the run's report/ folder."""
    from ..report import build_report

    build_report(args.run, overrides=args.overrides, trust_remote_code=args.trust_remote_code)
    return 0
