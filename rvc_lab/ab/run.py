"""``rvc_lab.ab.run_ab``: convert every input by A and by B, measure, summarise; ``write_ab`` for ``-o OUT``."""
from __future__ import annotations

import copy
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rvc_lab.ab import metrics as M
from rvc_lab.ab.spec import ABSpec, parse_spec
from rvc_lab.ab.stats import summarize
from rvc_lab.audio import load_audio, prepare_input, resample_offline
from rvc_lab.errors import RVCLabError, SettingsError

log = logging.getLogger("rvc_lab")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
#: The line the table and the page carry when a voice has random weights (demo assets).
RANDOM_WEIGHTS_NOTE = ("random-weight voice (demo assets): speaker similarity and predicted MOS measure nothing "
                       "about a voice here; only A-against-B distances, F0 kept and cost are meaningful")


@dataclass
class ABResult:
    """What :func:`run_ab` measured.

    Attributes
    ----------
    per_input : DataFrame
        One row per input and metric: ``input, metric, group, kind, a, b, diff`` (``diff`` = B - A
        for per-spec metrics; the A-against-B value for pairwise ones, whose ``a``/``b`` are NaN).
    summary : DataFrame
        One row per metric (:data:`rvc_lab.ab.stats.SUMMARY_COLUMNS`).
    skipped : dict
        ``{metric: reason}`` not computed (missing package, no ``--target-voice``).
    unreadable : list of (path, reason)
        Inputs that could not be read; the rest ran.
    outputs : dict
        ``{input name: {"A": (audio float32, sr), "B": (...), "input": (x16, 16000)}}``.
    synthetic : bool
        A or B is a random-weight voice.
    notes : list of str
        Log-worthy facts said once (resampling for comparison, random weights).
    """

    specs: dict
    per_input: pd.DataFrame
    summary: pd.DataFrame
    skipped: dict
    unreadable: list
    outputs: dict = field(repr=False)
    synthetic: bool = False
    notes: list = field(default_factory=list)
    mode: str = "offline"
    f0_judge: str = "fcpe"


def collect_inputs(inputs) -> list[Path]:
    """Input files from files and directories (a directory: its audio files, sorted, not recursive).

    Raises
    ------
    SettingsError
        Nothing to convert, or a path that does not exist.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files = []
    for p in map(Path, inputs):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        elif p.exists():
            files.append(p)
        else:
            raise SettingsError(f"--inputs {p}: no such file or directory")
    if not files:
        raise SettingsError("--inputs: no audio files to convert (empty input set)")
    return files


def _models_for(spec: ABSpec, cache: dict):
    """Loaded models of a spec; specs naming the same files share one load, a LoRA gets its own generator."""
    from rvc_lab.cli.options import load_models

    base_key = spec.models_key[:-1]
    if base_key not in cache:
        cache[base_key] = load_models(spec.args)
    models = cache[base_key]
    if not spec.args.lora:
        return models
    from rvc_lab.files.generator_weights import build_synthesizer
    from rvc_lab.files.lora import check_adapter_fits, load_adapter
    from rvc_lab.lora import merged_weights

    adapter = load_adapter(spec.args.lora)
    check_adapter_fits(adapter, models.voice)  # names the first layer that does not fit
    voice = copy.copy(models.voice)
    voice.weights = merged_weights(models.voice, adapter)  # merged in memory, float32: the file is untouched
    out = copy.copy(models)
    out.voice, out.net_g, out._f0 = voice, build_synthesizer(voice), models._f0
    log.info("spec %s: adapter %s merged (%d layers)", spec.label, spec.args.lora, len(adapter.layers))
    return out


def _convert(models, spec: ABSpec, audio: np.ndarray, sr: int) -> tuple[np.ndarray, int, float]:
    """One conversion: (float32 output aligned with the input, its rate, wall seconds)."""
    if spec.mode == "offline":
        from rvc_lab.convert.offline import convert_offline

        x16 = prepare_input(audio, sr)
        t0 = time.perf_counter()
        r = convert_offline(models, x16, spec.settings)
        return r.audio.astype(np.float32) / 32768.0, r.sr, time.perf_counter() - t0
    from rvc_lab.cli.convert import file_at_stream_rate
    from rvc_lab.convert.streaming import stream_file

    x, xsr = file_at_stream_rate(audio, sr, 48000)
    t0 = time.perf_counter()
    out, out_sr, conv = stream_file(models, x, xsr, spec.settings)
    wall = time.perf_counter() - t0
    # the engine's output is late by its algorithmic latency: drop it so sample 0 is input sample 0
    lag = int(round(conv.geometry.algorithmic_latency_s * out_sr))
    n = int(round(x.shape[0] * out_sr / xsr))
    return np.asarray(out[lag:lag + n], np.float32), out_sr, wall


def run_ab(a, b, inputs, *, target_voice=None, mode: str = "offline", f0_judge: str = "fcpe",
           models_cache: dict | None = None) -> ABResult:
    """Convert every input by A and by B and compare them (see ``docs`` in the README's A/B section).

    Parameters
    ----------
    a, b : str or ABSpec
        Specs (:func:`rvc_lab.ab.spec.parse_spec`); both are validated before any model loads.
    inputs : path or list of paths
        Audio files and/or directories of them.  Unreadable files are listed in
        ``ABResult.unreadable`` and the rest run.
    target_voice : list of paths, optional
        Reference recordings of the target speaker; without them ``similarity_target`` is
        not computed (listed in ``skipped``).
    mode : {"offline", "stream"}
    f0_judge : str
        F0 method measuring input and outputs (an :data:`rvc_lab.f0.METHODS` name, not rmvpe
        unless a spec brings an rmvpe file).
    models_cache : dict, optional
        Loaded models by files, kept between calls (a notebook or tests running several studies
        on one voice load it once).

    Raises
    ------
    SettingsError
        Bad specs, an empty input set, every input unreadable, a bad judge or target voice.
    """
    from rvc_lab.f0 import F0Estimator
    from rvc_lab.files.voices import looks_synthetic

    specs = {"A": a if isinstance(a, ABSpec) else parse_spec(a, "A", mode),
             "B": b if isinstance(b, ABSpec) else parse_spec(b, "B", mode)}
    files = collect_inputs(inputs)
    judge = F0Estimator(f0_judge, rmvpe_path=specs["A"].args.rmvpe if f0_judge == "rmvpe" else None)
    targets = [Path(t) for t in (target_voice or [])]
    for t in targets:
        if not t.is_file():
            raise SettingsError(f"--target-voice {t}: no such file")

    loaded, unreadable = [], []
    for f in files:
        try:
            loaded.append((f, *load_audio(f)))
        except (RVCLabError, OSError, RuntimeError, ValueError) as exc:
            unreadable.append((str(f), str(exc)))
            log.warning("input %s unreadable, left out: %s", f, exc)
    if not loaded:
        raise SettingsError(f"no readable input ({len(unreadable)} unreadable: "
                            + "; ".join(f"{p}: {r}" for p, r in unreadable) + ")")

    cache = {} if models_cache is None else models_cache
    models = {k: _models_for(s, cache) for k, s in specs.items()}
    synthetic = any(looks_synthetic(m) or specs[k].demo for k, m in models.items())
    skipped: dict = {}
    notes: list = []

    def guarded(metric_names, fn, *args):
        names = [m for m in metric_names if m not in skipped]
        if not names:
            return {}
        try:
            return fn(*args)
        except M.MetricUnavailable as exc:
            skipped.update(dict.fromkeys(metric_names, str(exc)))
            log.warning("%s skipped: %s", ", ".join(metric_names), exc)
            return {}

    target_emb = None
    if not targets:
        skipped["similarity_target"] = "not computed: no --target-voice reference given"
    else:
        embs = guarded(["similarity_target", "similarity_ab"],
                       lambda: {"e": [M.speaker_embedding(*load_audio(t)) for t in targets]})
        if embs:
            target_emb = np.mean(embs["e"], axis=0)

    rows, outputs, said_rates = [], {}, False
    for f, audio, sr in loaded:
        name = _unique_name(f, outputs)
        x16 = prepare_input(audio, sr)
        out = {}
        for k, s in specs.items():
            y, ysr, wall = _convert(models[k], s, audio, sr)
            out[k] = (y, ysr)
            vals = {"ms_per_s": 1000.0 * wall / (audio.shape[0] / sr)}
            y16 = resample_offline(y, ysr, 16000) if ysr != 16000 else y
            vals.update(M.content_kept(y16, M.input_f0(x16, judge, s.settings.pitch), judge))
            if target_emb is not None:
                vals.update(guarded(["similarity_target", "similarity_ab"],
                                    lambda: {"similarity_target": M.cosine(M.speaker_embedding(y, ysr), target_emb)}))
            vals.update(guarded(["dnsmos_overall", "dnsmos_signal", "dnsmos_background", "dnsmos_p808"],
                                M.dnsmos, y, ysr))
            out[f"{k}_values"] = vals
        (ya, sra), (yb, srb) = out["A"], out["B"]
        if sra != srb:
            if not said_rates:
                msg = f"A's outputs are at {sra} Hz, B's at {srb} Hz: B resampled to {sra} Hz for A-against-B metrics"
                log.info(msg)
                notes.append(msg)
                said_rates = True
            yb = resample_offline(yb, srb, sra).astype(np.float32)
        pair = M.a_against_b(ya, yb, sra)
        pair.update(guarded(["similarity_ab"], lambda: {"similarity_ab": M.cosine(
            M.speaker_embedding(ya, sra), M.speaker_embedding(yb, sra))}))
        for metric, (group, kind) in M.METRICS.items():
            if kind == "per_spec" and metric in out["A_values"]:
                va, vb = out["A_values"][metric], out["B_values"].get(metric, np.nan)
                rows.append((name, metric, group, kind, va, vb, vb - va))
            elif kind == "pairwise" and metric in pair:
                rows.append((name, metric, group, kind, np.nan, np.nan, pair[metric]))
        outputs[name] = {"A": out["A"], "B": out["B"], "input": (x16, 16000)}

    per_input = pd.DataFrame(rows, columns=["input", "metric", "group", "kind", "a", "b", "diff"])
    group_notes = {}
    if synthetic:
        notes.append(RANDOM_WEIGHTS_NOTE)
        group_notes = {"voice": RANDOM_WEIGHTS_NOTE, "quality": RANDOM_WEIGHTS_NOTE}
    summary = summarize(per_input, skipped, group_notes)
    return ABResult(specs=specs, per_input=per_input, summary=summary, skipped=skipped, unreadable=unreadable,
                    outputs=outputs, synthetic=synthetic, notes=notes, mode=mode, f0_judge=f0_judge)


def _unique_name(path: Path, taken) -> str:
    """The input's stem, made unique (two ``x.wav`` from different folders: ``x``, ``x_2``)."""
    stem, k = path.stem, 2
    name = stem
    while name in taken:
        name, k = f"{stem}_{k}", k + 1
    return name


def write_ab(result: ABResult, out_dir: str | os.PathLike) -> Path:
    """Write ``per_input.csv``, ``summary.csv``, ``summary.json``, ``index.html`` and ``audio/<input>_{A,B}.wav``.

    The directory is replaced whole and atomically (:func:`rvc_lab.atomic.atomic_directory`):
    a reader sees the previous complete result or the new one.
    """
    import soundfile as sf

    from rvc_lab.ab.html import render_html
    from rvc_lab.atomic import atomic_directory

    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        result.per_input.to_csv(tmp / "per_input.csv", index=False)
        result.summary.to_csv(tmp / "summary.csv", index=False)
        summary = {
            "mode": result.mode, "f0_judge": result.f0_judge, "synthetic_weights": result.synthetic,
            "specs": {k: s.text for k, s in result.specs.items()},
            "inputs": list(result.outputs), "unreadable": [{"path": p, "reason": r} for p, r in result.unreadable],
            "skipped": result.skipped, "notes": result.notes,
            "metrics": json.loads(result.summary.to_json(orient="records")),
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=True), encoding="utf-8")
        (tmp / "audio").mkdir()
        for name, o in result.outputs.items():
            for k in ("A", "B"):
                y, sr = o[k]
                sf.write(tmp / "audio" / f"{name}_{k}.wav", np.clip(y, -1, 1), sr, subtype="FLOAT")
        (tmp / "index.html").write_text(render_html(result), encoding="utf-8")
    log.info("wrote %s (%d inputs, %d unreadable)", out_dir, len(result.outputs), len(result.unreadable))
    return out_dir
