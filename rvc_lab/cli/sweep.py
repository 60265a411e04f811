"""``rvc-lab sweep STUDY -o OUT``: run a study's cells on Dask (see :mod:`rvc_lab.sweep`)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rvc_lab.cpu import cpu_model
from rvc_lab.errors import SettingsError
from rvc_lab.sweep import load_study, run_study
from rvc_lab.sweep.runner import check_run_options

log = logging.getLogger("rvc_lab")


def cmd_sweep(a: argparse.Namespace) -> int:
    """Check the study and the options, run the missing cells, print what was done."""
    out = Path(a.output)
    if out.exists() and not out.is_dir():
        raise SettingsError(f"-o {out} is a file; give a folder for the results")
    check_run_options(a.workers, a.scheduler, a.serial)  # before the study's files are read
    study = load_study(a.study)
    result = run_study(study, out, workers=a.workers, scheduler=a.scheduler, serial=a.serial,
                       progress=not a.no_progress, retry_errors=a.retry_errors)
    where = "serially" if a.serial or not result.computed else (
        f"on {a.scheduler}" if a.scheduler else "on a LocalCluster")
    sys.stdout.write(f"study {study.name}: {result.cells} cells, {result.cached} from {out / 'cells'}, "
                     f"{result.computed} computed {where} ({result.n_workers} worker(s), "
                     f"{study.threads_per_cell} thread(s) per cell), {result.failed} with errors; "
                     f"{result.wall_s:.1f} s on {cpu_model()}\n")
    sys.stdout.write(f"wrote {result.paths['parquet']} and {result.paths['csv']} ({len(result.table)} rows)\n")
    if result.failed:
        errors = result.table[result.table["status"] == "error"].drop_duplicates(["measure", "reason"])
        for _, row in errors.head(5).iterrows():
            sys.stdout.write(f"error in {row['measure']}: {row['reason']}\n")
    return 1 if result.failed else 0


def add_parser(sub) -> None:
    s = sub.add_parser("sweep", help="run a study (grid x inputs x voices) on Dask, cached per cell")
    s.add_argument("study", help="study file (.yaml or .json; schema: rvc_lab.sweep.study)")
    s.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="results folder: results.parquet, results.csv, cells/ (reused on rerun)")
    s.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="an existing Dask scheduler (workers: same rvc_lab environment, read access to the study's files)")
    s.add_argument("--workers", type=int, help="LocalCluster workers (default: one per usable core)")
    s.add_argument("--serial", action="store_true", help="run the cells one by one in this process")
    s.add_argument("--retry-errors", action="store_true", help="compute again the cells that recorded an error")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)
