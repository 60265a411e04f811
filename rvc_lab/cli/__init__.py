"""The ``rvc-lab`` command (see ``rvc-lab --help`` and DESIGN.md's command-line contract).

Each command group is a module exposing ``add_parser(subparsers)``: it adds its subcommand(s)
to the ``argparse`` sub-parsers object and sets ``func`` on each (the handler: parsed namespace
-> exit code).  :data:`COMMANDS` lists those modules in ``rvc-lab --help`` order; registering a
new command group is one line there.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from rvc_lab.errors import RVCLabError

log = logging.getLogger("rvc_lab")

#: Command modules in ``rvc-lab --help`` order, by dotted name (the module may live anywhere in
#: the package).  Each exposes ``add_parser(subparsers)``.  To add a command: write the module,
#: add one line here.
COMMANDS: tuple[str, ...] = (
    "rvc_lab.cli.files",  # info, demo-assets
    "rvc_lab.cli.convert",  # convert, stream
    "rvc_lab.cli.export",  # export
    "rvc_lab.cli.lora",  # lora merge|random
    "rvc_lab.cli.ab",  # ab (A/B studies)
    "rvc_lab.cli.pitch",  # f0, f0-bench
    "rvc_lab.cli.cases",  # check, reference make|compare
    "rvc_lab.cli.port",  # port-check (the C++ host against reference cases)
    "rvc_lab.cli.report",  # report
    "rvc_lab.cli.live",  # live (audio devices, measured latency)
    "rvc_lab.cli.sweep",  # sweep (studies on Dask)
    "rvc_lab.cli.index_study",  # index-study (index compression measured)
)


def build_parser() -> argparse.ArgumentParser:
    """The ``rvc-lab`` parser with every module of :data:`COMMANDS` registered, in order."""
    p = argparse.ArgumentParser(prog="rvc-lab", description="RVC research and validation workbench")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rvc-lab``: parse, run the handler, turn :class:`RVCLabError` into exit code 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    if next((x for x in args if not x.startswith("-")), None) == "live":
        # before torch loads (the command modules import it): see rvc_lab.cli.live
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO, format="rvc-lab: %(message)s")
    # faiss logs every CPU-feature probe of its loader at INFO: noise, not information
    logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        return a.func(a) or 0
    except RVCLabError as exc:
        print(f"rvc-lab {a.command}: error: {exc}", file=sys.stderr)
        return 2
