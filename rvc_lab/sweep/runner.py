"""Run a study: every cell once, cached, on a Dask cluster or serially; results as one tidy table.

``OUT/results.parquet`` and ``OUT/results.csv`` hold one row per cell and metric (columns
:data:`RESULT_COLUMNS` plus one column per swept or fixed setting); ``OUT/cells/`` holds the
cell records that let an interrupted study resume (:mod:`rvc_lab.sweep.cache`).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

import rvc_lab
from rvc_lab.atomic import atomic_path, write_text_atomic
from rvc_lab.cpu import cpu_model, usable_cores
from rvc_lab.errors import SettingsError
from rvc_lab.files.synthetic import cached_demo_assets
from rvc_lab.sweep import cache
from rvc_lab.sweep.cluster import connect, local_cluster
from rvc_lab.sweep.measures import error_row, load_input, run_cell

log = logging.getLogger(__name__)

#: Columns of the results table besides the settings (which sit between ``input`` and ``measure``).
RESULT_COLUMNS = ("study", "cell", "voice", "input", "measure", "metric", "value", "status", "reason",
                  "cpu_model", "n_workers", "threads")


@dataclass
class SweepResult:
    """What :func:`run_study` did: ``table`` (the tidy results), cell counts, where files went."""

    table: pd.DataFrame
    cells: int
    computed: int
    cached: int
    failed: int
    n_workers: int
    wall_s: float
    paths: dict


def resolve_voices(study):
    """The study with demo voices replaced by their files (written to the cache on first use)."""
    if not any(v.demo for v in study.voices):
        return study

    paths = cached_demo_assets()
    voices = [replace(v, model=os.fspath(paths[v.demo]), hubert=os.fspath(paths["hubert"]),
                      index=os.fspath(paths[f"{v.demo}_index"]), rmvpe=os.fspath(paths["rmvpe"])) if v.demo else v
              for v in study.voices]
    return replace(study, voices=voices)


def _environment() -> dict:
    import torch

    return {"rvc_lab": rvc_lab.__version__, "torch": torch.__version__, "cpu_model": cpu_model()}


def _fingerprints(study) -> tuple[dict, dict]:
    voices = {v: "|".join(cache.file_sha256(p) if p else "-" for p in (v.model, v.hubert, v.index, v.rmvpe))
              for v in study.voices}
    inputs = {}
    for spec in study.inputs:
        if spec.kind in ("file", "dataset"):
            inputs[spec] = cache.file_sha256(spec.ref) + (f"|{cache.file_sha256(spec.reference)}" if spec.reference else "")
        else:  # built-ins: hash what they generate here (espeak versions differ between machines)
            audio, sr, _ = load_input(spec, study.seconds)
            inputs[spec] = cache.audio_sha256(audio, sr)
    return voices, inputs


def run_study(study, out: str | os.PathLike, *, workers: int | None = None, scheduler: str | None = None,
              serial: bool = False, progress: bool = True, retry_errors: bool = False) -> SweepResult:
    """Run every cell of ``study`` that ``out`` has no record of, then write the results table.

    Parameters
    ----------
    study : rvc_lab.sweep.study.Study
    out : path-like
        Results folder (created); its ``cells/`` records are reused.
    workers : int, optional
        LocalCluster size (default: one worker per usable core).
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://HOST:PORT``) instead of a LocalCluster.
    serial : bool
        Run the cells one by one in this process (same threads per cell as on a cluster).
    progress : bool
        Show a progress bar of the cells being computed.
    retry_errors : bool
        Compute again the cells whose record holds an error.
    """
    from tqdm.auto import tqdm

    check_run_options(workers, scheduler, serial)
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study = resolve_voices(study)
    env = _environment()
    voice_fp, input_fp = _fingerprints(study)
    cells = study.cells()
    keys = [cache.cell_key(c, voice_fp.get(c.voice, "-"), input_fp[c.input], env) for c in cells]
    records = {k: cache.read_record(out, k) for k in keys}
    if retry_errors:
        records = {k: None if r and _has_error(r) else r for k, r in records.items()}
    todo = [(k, c) for k, c in zip(keys, cells) if records[k] is None]
    todo = list(dict(todo).items())  # identical cells (same key) are computed once
    cached = len(cells) - sum(1 for k in keys if records[k] is None)
    log.info("study %s: %d cells, %d in %s, %d to compute", study.name, len(cells), cached, out, len(todo))

    n_workers, client, cluster = 1, None, None
    try:
        if todo and not serial:
            if scheduler:
                client = connect(scheduler, study.file_paths())
            else:
                client, cluster = local_cluster(min(workers or usable_cores(), len(todo)), study.threads_per_cell)
            n_workers = len(client.scheduler_info()["workers"])
        labels = {k: c.label() for k, c in todo}
        bar = tqdm(total=len(todo), desc=f"sweep {study.name}", unit="cell", disable=not progress)
        for key, result in _execute(todo, client):
            records[key] = {"key": key, "label": labels[key], "n_workers": n_workers, **result}
            cache.write_record(out, key, records[key])
            bar.update(1)
        bar.close()
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    table = _table(study, cells, keys, records)
    paths = _write_results(table, out)
    failed = sum(1 for k in dict.fromkeys(keys) if _has_error(records[k]))
    return SweepResult(table, len(cells), len(todo), cached, failed, n_workers, time.perf_counter() - t0, paths)


def _has_error(record: dict) -> bool:
    return any(row["status"] == "error" for row in record["rows"])


def check_run_options(workers: int | None, scheduler: str | None, serial: bool) -> None:
    """Refuse contradictory placements (``rvc-lab sweep`` and ``f0-bench --dataset`` share them)."""
    if workers is not None and workers < 1:
        raise SettingsError(f"--workers {workers}: give 1 or more")
    if serial and (scheduler or workers):
        raise SettingsError("--serial runs in this process: leave out --scheduler and --workers")
    if scheduler and workers:
        raise SettingsError("--workers sizes a LocalCluster: an existing cluster (--scheduler) has its own")


def _execute(todo, client):
    """Yield ``(key, run_cell result)`` as cells finish (serially when ``client`` is None)."""
    if client is None:
        for key, cell in todo:
            yield key, run_cell(cell)
        return
    from dask.distributed import as_completed

    cells = dict(todo)
    futures = {client.submit(run_cell, cell, key=f"rvc-lab-cell-{key}", pure=False): key for key, cell in todo}
    for fut in as_completed(futures):
        key = futures[fut]
        try:
            yield key, fut.result()
        except Exception as exc:  # the worker died (run_cell itself never raises)
            yield key, {"rows": [error_row(m, exc) for m in cells[key].measure], "wall_s": float("nan"),
                        "cpu_model": ""}


def _table(study, cells, keys, records) -> pd.DataFrame:
    setting_names = list(dict.fromkeys([*study.settings, *study.grid]))
    rows = []
    for cell, key in zip(cells, keys):
        rec = records[key]
        ident = {"study": study.name, "cell": key[:12], "voice": cell.voice.name if cell.voice else "",
                 "input": cell.input.name, **{k: cell.params.get(k) for k in setting_names}}
        for r in rec["rows"]:
            rows.append({**ident, **r, "cpu_model": rec.get("cpu_model", ""), "n_workers": rec.get("n_workers", 1),
                         "threads": cell.threads})
    columns = [*RESULT_COLUMNS[:4], *setting_names, *RESULT_COLUMNS[4:]]
    return pd.DataFrame(rows, columns=columns)


def _write_results(table: pd.DataFrame, out: Path) -> dict:
    with atomic_path(out / "results.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    write_text_atomic(out / "results.csv", table.to_csv(index=False))
    return {"parquet": out / "results.parquet", "csv": out / "results.csv"}


def read_results(out: str | os.PathLike) -> pd.DataFrame:
    """The results table a sweep wrote to ``out`` (parquet)."""
    return pd.read_parquet(Path(out) / "results.parquet")
