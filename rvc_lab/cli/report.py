"""``rvc-lab report``: the HTML report (the embedded default with no arguments)."""
from __future__ import annotations

from rvc_lab.report import main_report


def add_parser(sub) -> None:
    s = sub.add_parser("report", help="HTML report; with no arguments runs the embedded default")
    s.add_argument("-o", "--output-dir", default="reports/default")
    s.add_argument("--model")
    s.add_argument("--index")
    s.add_argument("--hubert")
    s.add_argument("--rmvpe")
    s.add_argument("--input", help="speech/tone file to convert (default: built-in inputs)")
    s.add_argument("--sweep", metavar="OUT",
                   help="show this rvc-lab sweep output folder's results (default: a small study of the voice)")
    s.add_argument("--quick", action="store_true", help="smaller settings (used by tests)")
    s.set_defaults(func=main_report)
