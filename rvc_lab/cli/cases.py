"""``rvc-lab check`` (re-run reference cases) and ``rvc-lab reference make|compare``."""
from __future__ import annotations

import argparse

from rvc_lab.reference import main_check, main_reference


def add_parser(sub) -> None:
    s = sub.add_parser("check", help="re-run reference cases and compare (exit 0 only when all pass)")
    s.add_argument("cases_dir", nargs="?", default="reference_cases")
    s.set_defaults(func=main_check)

    s = sub.add_parser("reference", help="make reference cases / compare external outputs")
    s.set_defaults(func=main_reference)
    s.add_argument("action", choices=("make", "compare"))
    s.add_argument("rest", nargs=argparse.REMAINDER)
