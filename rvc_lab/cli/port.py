"""``rvc-lab port-check``: the reference C++ host (ports/cpp) on reference cases, stage by stage."""
from __future__ import annotations


def _run(a) -> int:
    from rvc_lab.port.check import main_port_check

    return main_port_check(a)


def add_parser(sub) -> None:
    s = sub.add_parser("port-check", help="build the C++ host and compare it stage by stage on reference cases "
                                          "(exit 0 within targets, 1 divergence, 2 error)")
    s.add_argument("cases", nargs="*", help="case folders or folders of cases (default reference_cases)")
    s.add_argument("--bundle", help="bundle to run (default: each case's voice, exported once into the cache)")
    s.set_defaults(func=_run)
