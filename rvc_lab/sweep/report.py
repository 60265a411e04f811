"""The report's sweep section: a small study of the report's voice, or a sweep the user ran.

``rvc-lab report`` runs :func:`small_study` serially (cells cached under the rvc_lab cache, so a
rerun on the same machine computes nothing), or reads ``--sweep OUT`` (the folder of an
``rvc-lab sweep`` run), and shows each swept parameter's effect (:mod:`rvc_lab.sweep.effects`).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from rvc_lab.sweep import read_results, run_study
from rvc_lab.sweep.study import study_from_dict

#: Metrics the section plots, in this order, when the sweep has them (parity's, then F0's).
SECTION_METRICS = ("features_rel_l2", "f0_cents_mae", "output_mcd_db", "raw_pitch_accuracy", "cents_mae")


def small_study(voice, grid: dict, *, measure=("parity", "f0"), tones=("complex_220",), seconds: float = 2.0,
                settings: dict | None = None, rmvpe: str | None = None, name: str = "report"):
    """A study over ground-truth tones, built in code (the report's and the notebooks' sweep panels).

    Parameters
    ----------
    voice : rvc_lab.files.voices.VoiceFiles or None
        The voice (None: an F0-only study, whose cost is the F0 tracking time).
    grid : dict
        Setting name -> list of values (keys of :data:`rvc_lab.sweep.SETTING_KEYS`).
    measure : sequence of str
        Measurements (:data:`rvc_lab.sweep.measures.MEASURES`).
    tones : sequence of str
        Tone-suite names (:data:`rvc_lab.testsignals.SUITE_NAMES`), each with exact F0 truth.
    seconds : float
        Length of each tone (s).
    settings : dict, optional
        Fixed settings of every cell (e.g. ``{"block_time": 0.2}``).
    rmvpe : str, optional
        ``rmvpe.pt`` for the rmvpe method of an F0-only study (a voice brings its own).
    """
    raw = {"name": name, "inputs": [{"tones": list(tones)}], "grid": {k: list(v) for k, v in grid.items()},
           "settings": dict(settings or {}), "measure": list(measure), "seconds": seconds}
    if voice is not None:
        files = {"model": voice.model, "hubert": voice.hubert, "name": voice.name}
        files.update({k: getattr(voice, k) for k in ("index", "rmvpe") if getattr(voice, k)})
        raw["voices"] = [files]
    elif rmvpe:
        raw["rmvpe"] = rmvpe
    return study_from_dict(raw)


def sweep_for_report(voice, plan, sweep_dir: str | os.PathLike | None, cache_dir: Path) -> tuple[pd.DataFrame, str]:
    """The results table the report shows and a sentence saying where it came from."""
    if sweep_dir is not None:
        return read_results(sweep_dir), f"the sweep in {os.fspath(sweep_dir)}"
    study = small_study(voice, dict(plan.sweep_grid), tones=plan.sweep_tones,
                        settings={"block_time": plan.parity_block_times[0]}, seconds=plan.sweep_seconds)
    result = run_study(study, cache_dir / "report_sweep", serial=True, progress=False)
    grid = ", ".join(f"{k} {list(v)}" for k, v in plan.sweep_grid)
    return result.table, (f"a {result.cells}-cell study of this voice run serially by the report ({grid}; "
                          f"block {plan.parity_block_times[0]:g} s; {plan.sweep_seconds:g} s tones: "
                          f"{', '.join(plan.sweep_tones)})")


def section_metrics(effects: pd.DataFrame) -> list[str]:
    """The metrics to plot: :data:`SECTION_METRICS` present in ``effects``, else its first three."""
    have = list(dict.fromkeys(effects["metric"]))
    chosen = [m for m in SECTION_METRICS if m in have]
    return chosen or have[:3]
