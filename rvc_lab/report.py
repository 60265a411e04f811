"""``rvc-lab report``: one self-contained HTML page that says what the chain does on this machine.

With no arguments it runs the embedded default: the seeded demo assets (random weights in the real
file formats), the F0 tone suite, a speech input available offline (:mod:`rvc_lab.speech`), a
streaming-vs-offline sweep (:mod:`rvc_lab.parity`) and a latency profile of the realtime chain,
and writes ``index.html`` (figures embedded as base64 PNG, audio as base64 WAV, no external
resource) plus the tables as CSV next to it.  With ``--model/--hubert`` (and optionally
``--index``, ``--rmvpe``, ``--input``) it does the same with the user's files.

The building blocks live elsewhere and are shared with the notebook widgets and benchmarks:
the voice files (:mod:`rvc_lab.files.voices`), a stream's stage profile
(:func:`rvc_lab.perf.profile_stream`) and the environment (:mod:`rvc_lab.environment`).
"""
from __future__ import annotations

import html
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from rvc_lab import perf_plots, plots
from rvc_lab.atomic import write_text_atomic
from rvc_lab.audio import load_audio, resample_offline
from rvc_lab.convert.streaming import StreamSettings
from rvc_lab.environment import environment_info
from rvc_lab.errors import SettingsError
from rvc_lab.export.compare import compare_backends
from rvc_lab.f0 import F0Estimator
from rvc_lab.f0bench import BENCH_SAMPLE_RATE, bench_summary, run_f0_bench
from rvc_lab.files.synthetic import default_cache_dir
from rvc_lab.files.voices import VoiceFiles, demo_voice_files, looks_synthetic
from rvc_lab.html_page import CSS, img, key_values, table, wav_data_uri
from rvc_lab.index_study import index_study_for_report, index_study_section
from rvc_lab.metrics.align import align_signals
from rvc_lab.parity import parity_stream_settings, parity_sweep
from rvc_lab.perf import profile_stream, scaling_study
from rvc_lab.plan import Plan
from rvc_lab.speech import speech_input
from rvc_lab.sweep.effects import parameter_effects, swept_parameters
from rvc_lab.sweep.report import section_metrics, sweep_for_report
from rvc_lab.testsignals import tone_suite

log = logging.getLogger(__name__)

#: Index rate of the latency runs when the voice has an index (upstream's offline default).
LATENCY_INDEX_RATE = 0.75


# ----------------------------------------------------------------------------- running
@dataclass
class ReportData:
    """Everything a report shows (also what the notebooks can reuse)."""

    voice: VoiceFiles
    synthetic: bool
    plan: Plan
    speech_description: str
    environment: dict
    voice_summary: dict = field(default_factory=dict)
    f0_bench: pd.DataFrame | None = None
    f0_summary: pd.DataFrame | None = None
    f0_tracks: dict = field(default_factory=dict)
    parity_sweep: pd.DataFrame | None = None
    parity_detail: object = None
    latency: list = field(default_factory=list)
    scaling: pd.DataFrame | None = None
    scaling_fit: pd.DataFrame | None = None
    backends: pd.DataFrame | None = None
    backends_settings: object = None
    sweep: pd.DataFrame | None = None
    sweep_effects: pd.DataFrame | None = None
    sweep_source: str = ""
    audio_clips: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    index_study: pd.DataFrame | None = None


def collect(voice: VoiceFiles, plan: Plan, input_path: str | None = None,
            sweep_dir: str | os.PathLike | None = None) -> ReportData:
    """Run every measurement of the report (``sweep_dir``: show that sweep instead of running one)."""
    import torch

    timings: dict[str, float] = {}
    env = environment_info()

    t = time.perf_counter()
    models = voice.load()
    synthetic = voice.synthetic or looks_synthetic(models)
    timings["load models"] = time.perf_counter() - t
    audio, sr, description = _report_input(input_path, plan)
    data = ReportData(voice=voice, synthetic=synthetic, plan=plan, speech_description=description, environment=env,
                      voice_summary={k: v for k, v in models.voice.summary().items() if k != "config"},
                      timings_s=timings)
    if not models.voice.if_f0:
        data.notes.append("This voice has no F0 input: the F0 stage of the chain is not run.")

    t = time.perf_counter()
    data.f0_bench, data.f0_summary, data.f0_tracks = _f0_section(plan, voice.rmvpe, synthetic)
    timings["F0 tone suite"] = time.perf_counter() - t

    # streaming vs offline
    t = time.perf_counter()
    f0_method = plan.f0_method if models.voice.if_f0 else "pm"
    if f0_method == "rmvpe" and not voice.rmvpe:
        f0_method = "fcpe"
    base = parity_stream_settings(f0_method=f0_method, block_time=plan.parity_block_times[0])
    sweep = parity_sweep(models, audio, sr, base, extra_times=plan.parity_extra_times,
                         block_times=plan.parity_block_times, keep_results=True)
    results = sweep.attrs.pop("results")
    data.parity_sweep = sweep
    # the detail shown is the setting closest to upstream's default (largest extra time, first block)
    data.parity_detail = max((r for r in results if r.settings.block_time == plan.parity_block_times[0]),
                             key=lambda r: r.settings.extra_time)
    timings["streaming vs offline"] = time.perf_counter() - t

    # latency
    t = time.perf_counter()

    lat_audio = audio[: int(plan.latency_seconds * sr)]
    for cfg in plan.latency_configs:
        cfg = dict(cfg)
        if cfg.get("f0_method") == "rmvpe" and not voice.rmvpe:
            continue
        threads = cfg.pop("threads", None)
        if models.index is not None:
            cfg.setdefault("index_rate", LATENCY_INDEX_RATE)  # so the retrieval stage is timed too
        s = StreamSettings(**cfg)
        label = f"block {s.block_time * 1000:.0f} ms, extra {s.extra_time:g} s, " + (
            s.f0_method if models.voice.if_f0 else "no F0") + (f", {threads} thread" if threads else "")
        if any(lp.label == label for lp in data.latency):
            continue  # a voice without F0 makes configs that differ only in F0 method identical
        data.latency.append(profile_stream(models, lat_audio, sr, s, threads=threads, label=label))
    timings["latency profile"] = time.perf_counter() - t

    if plan.backends:
        t = time.perf_counter()
        data.backends, data.backends_settings = _backend_section(voice, models, lat_audio, sr, plan)
        timings["backends"] = time.perf_counter() - t

    t = time.perf_counter()

    data.scaling, data.scaling_fit = scaling_study(models, "rmvpe" if voice.rmvpe else "fcpe", quick=plan.quick,
                                                   sr=plan.stream_sr)
    timings["cost scaling"] = time.perf_counter() - t

    t = time.perf_counter()
    data.index_study = index_study_for_report(models, plan.quick)
    timings["index compression"] = time.perf_counter() - t

    t = time.perf_counter()

    data.sweep, data.sweep_source = sweep_for_report(voice, plan, sweep_dir, default_cache_dir())
    data.sweep_effects = parameter_effects(data.sweep)
    timings["sweep"] = time.perf_counter() - t

    d = data.parity_detail
    data.audio_clips = {
        "input": (d.input_audio, d.sr),
        "offline output": (d.offline_audio, d.sr),
        "streamed output (aligned)": (_aligned_stream(d), d.sr),
    }
    data.environment["torch_threads_during_run"] = torch.get_num_threads()
    if hasattr(os, "getloadavg"):
        # timings move with the machine's load: say what it was at the end too
        data.environment["load_average_at_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return data


def _backend_section(voice: VoiceFiles, models, audio: np.ndarray, sr: int, plan: Plan):
    """The first latency configuration on torch eager and on each exported backend of ``plan``."""
    cfg = {k: v for k, v in plan.latency_configs[0].items() if k != "threads"}
    if cfg.get("f0_method") == "rmvpe" and not voice.rmvpe:
        cfg["f0_method"] = "fcpe"
    if models.index is not None:
        cfg.setdefault("index_rate", LATENCY_INDEX_RATE)
    settings = StreamSettings(**cfg)
    by_backend = {"torch": models, **{b: voice.load(b) for b in plan.backends}}
    return compare_backends(by_backend, audio, sr, settings), settings


def _aligned_stream(result) -> np.ndarray:
    a, _ = align_signals(result.stream_audio, result.offline_audio, result.delay_samples)
    return a[: result.offline_audio.shape[0]]


def _report_input(input_path: str | None, plan: Plan) -> tuple[np.ndarray, int, str]:
    """Input at the stream rate: the user's file, else offline speech (see :mod:`rvc_lab.speech`)."""
    if input_path:
        audio, sr = load_audio(input_path)
        description = f"{Path(input_path).name} ({audio.shape[0] / sr:.1f} s at {sr} Hz)"
        if audio.shape[0] > plan.input_seconds * sr * 3:
            audio = audio[: int(plan.input_seconds * 3 * sr)]
            description += f", first {plan.input_seconds * 3:g} s"
        if sr % 100 or sr != plan.stream_sr:
            audio = np.asarray(resample_offline(audio, sr, plan.stream_sr), dtype=np.float32)
            sr = plan.stream_sr
        return audio, sr, description

    sp = speech_input(max_seconds=plan.input_seconds, sr=plan.stream_sr, cache_dir=default_cache_dir() / "speech")
    return sp.audio, sp.sr, f"{sp.description} [{sp.source}]"


def _f0_section(plan: Plan, rmvpe_path: str | None, synthetic: bool):
    suite = tone_suite(BENCH_SAMPLE_RATE, plan.bench_seconds, names=plan.bench_signals)
    methods = [m for m in plan.bench_methods if m != "rmvpe" or rmvpe_path]
    random_rmvpe = synthetic and "rmvpe" in methods
    results = run_f0_bench(methods=[m for m in methods if not (random_rmvpe and m == "rmvpe")],
                           rmvpe_path=rmvpe_path, suite=suite)
    if random_rmvpe:
        # the demo rmvpe.pt has random weights: its row measures cost, not accuracy, so a few
        # signals are enough
        few = [c for c in suite if c.name in plan.synthetic_rmvpe_signals] or suite[:1]
        extra = run_f0_bench(methods=["rmvpe"], rmvpe_path=rmvpe_path, suite=few)
        extra["method"] = "rmvpe (random weights)"
        results = pd.concat([results, extra], ignore_index=True)
    summary = bench_summary(results)
    tracks = {}
    shown = [c for c in suite if c.name in ("glide_120_480", "vibrato_300", "gaps_200")][:2] or suite[:1]

    for case in shown:
        est = {}
        for m in methods:
            if m == "rmvpe" and random_rmvpe:
                continue
            try:
                est[m] = F0Estimator(m, rmvpe_path=rmvpe_path).track(case.audio)
            except Exception as exc:  # one method failing must not lose the figure
                log.warning("F0 track %s on %s failed: %s", m, case.name, exc)
        tracks[case.name] = (case.times, case.f0_hz, est)
    return results, summary, tracks


# ----------------------------------------------------------------------------- HTML
def render_html(data: ReportData) -> str:
    """The report page for collected measurements (self-contained)."""
    esc = html.escape
    plan = data.plan
    parts: list[str] = []
    sections = [("weights", "What was measured"), ("f0", "F0 accuracy on test tones"),
                ("parity", "Streaming vs offline"), ("latency", "Latency per stage"),
                ("sweep", "Effect of each swept setting"), ("index", "Index compression"), ("metrics", "Metric tables"),
                ("environment", "Environment")]
    created = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    parts.append(f"<h1>rvc_lab report</h1><p class='note'>Created {esc(created)}"
                 f"{' — quick settings (tests)' if plan.quick else ''}; "
                 f"total measurement time {sum(data.timings_s.values()):.0f} s.</p>")
    parts.append("<nav><ul>" + "".join(f"<li><a href='#{a}'>{esc(t)}</a></li>" for a, t in sections) + "</ul></nav>")

    # --- what was measured / synthetic warning
    parts.append("<h2 id='weights'>What was measured</h2>")
    if data.synthetic:
        parts.append(
            "<div class='warn'><b>These model weights are synthetic (seeded random numbers), not trained.</b> "
            "They have the real file formats, shapes and compute cost, so timings, latency and the "
            "streaming-vs-offline comparison measure the real chain. But the converted audio is not a voice: "
            "it sounds like buzz and noise, and no listening judgement can be made from it. Random-weight "
            "generators also emit a large DC offset and respond weakly to their content features, so output "
            "figures change little with context. For listening tests, run "
            "<code>rvc-lab report --model VOICE.pth --hubert hubert_base.pt --index added.index "
            "--rmvpe rmvpe.pt</code> with trained files.</div>")
    else:
        parts.append("<p>Model files supplied by the user (weights not checked for being trained).</p>")
    v = data.voice
    parts.append(key_values([
        ("voice", v.model), ("content encoder", v.hubert), ("index", v.index or "none"),
        ("rmvpe", v.rmvpe or "none (rmvpe method skipped)"), ("input", data.speech_description),
        ("voice version / rate / F0", f"{data.voice_summary.get('version')} / {data.voice_summary.get('sample_rate')} Hz"
                                      f" / {data.voice_summary.get('f0')}"),
        ("voice info", str(data.voice_summary.get("info", ""))[:200]),
    ]))
    for note in data.notes:
        parts.append(f"<p class='note'>{esc(note)}</p>")
    clips = "".join(f"<div>{esc(name)}<br><audio controls preload='none' src='{wav_data_uri(x, sr)}'></audio></div>"
                    for name, (x, sr) in data.audio_clips.items())
    parts.append(f"<p>Listen (parity run with the largest extra time; noise off, DC removed):</p><div class='clips'>{clips}</div>")

    # --- F0
    parts.append("<h2 id='f0'>F0 accuracy on test tones</h2>")
    parts.append("<p>Each method's 10 ms F0 track against the exact F0 of synthetic tones "
                 f"({len(data.f0_bench['signal'].unique())} signals, {plan.bench_seconds:g} s each, 16 kHz). "
                 "Raw pitch accuracy: fraction of voiced frames within 50 cents. "
                 + ("crepe (full) is left out of the default run: about 7 s of CPU per second of audio. " if
                    "crepe" not in plan.bench_methods else "") + "</p>")
    if data.synthetic and any(m.startswith("rmvpe") for m in data.f0_bench["method"]):
        parts.append("<p class='note'>rmvpe here runs the demo <code>rmvpe.pt</code> with random weights: its "
                     "row measures cost only; accuracy needs the real file (<code>--rmvpe</code>).</p>")
    parts.append(img(plots.plot_f0_accuracy(data.f0_bench, "raw_pitch_accuracy"), "F0 raw pitch accuracy heat map"))
    parts.append(img(plots.plot_f0_accuracy(data.f0_bench, "cents_mae", "mean |error| in cents on frames voiced in both"),
                      "F0 cents error heat map"))
    for name, (times, truth, est) in data.f0_tracks.items():
        parts.append(img(plots.plot_f0_tracks(times, truth, est, f"estimated vs true F0: {name}"), f"F0 tracks {name}"))
    parts.append(img(plots.plot_f0_speed(data.f0_summary), "F0 method cost"))

    # --- parity
    d = data.parity_detail
    parts.append("<h2 id='parity'>Streaming vs offline</h2>")
    parts.append(
        f"<p>The realtime chain and the whole-file chain on the same input (stream rate {d.sr} Hz, F0 "
        f"{esc(d.settings.f0_method)}, generator noise off, loudness matching off). Per stage, the streaming "
        "values the generator decodes are compared with the offline values at the same input time; the streamed "
        "file is compared with the offline file after removing the estimated delay. Lower is closer for "
        "rel. L2, cents and MCD; higher for SNR, SI-SDR and correlations.</p>")
    parts.append("<p class='note'>Streaming features lack <i>future</i> context (the newest frames are decoded), "
                 "so they never equal offline ones; more <code>extra_time</code> adds past context. The F0 window "
                 "does not depend on <code>extra_time</code>. Waveform figures are phase sensitive and the "
                 "streaming generator restarts its harmonic source every block, so spectral figures (spectral "
                 "convergence, MCD) are the fairer output comparison.</p>")
    parts.append(img(plots.plot_parity_sweep(data.parity_sweep), "parity sweep over extra time"))
    parts.append(img(plots.plot_parity_blocks(d), "per-block divergence"))
    parts.append(img(plots.plot_parity_waveforms(d, seconds=min(2.0, plan.input_seconds)), "aligned waveforms"))

    # --- latency
    parts.append("<h2 id='latency'>Latency per stage</h2>")
    if data.latency:
        lp0 = data.latency[0]
        parts.append(
            f"<p>Wall time of each stage per block (simulated clock, stream rate {lp0.sr} Hz, "
            f"{lp0.threads} torch threads unless the label says otherwise, first block left out"
            f"{', index rate %g' % LATENCY_INDEX_RATE if data.voice.index else ''}). "
            "A block must be computed within its own "
            "duration (dashed line) or the stream overruns. Algorithmic latency = block + crossfade + "
            "SOLA search, before any device buffer.</p>")
        if data.synthetic:
            parts.append("<p class='note'>Random weights cost exactly what trained ones do: these timings hold "
                         "for real voices of the same version and rate.</p>")
        parts.append(table(pd.DataFrame([lp.row() for lp in data.latency])))
        parts.append(img(plots.plot_stage_breakdown({lp.label: lp.trace for lp in data.latency}),
                          "stacked stage times per configuration"))
        parts.append(img(plots.plot_block_timeline(lp0.trace), f"per-block timeline {lp0.label}"))
        parts.append(img(plots.plot_load_histogram(lp0.trace), f"load histogram {lp0.label}"))
        parts.append(f"<p>Stage times of <b>{esc(lp0.label)}</b> (ms):</p>")
        parts.append(table(lp0.stages.reset_index().rename(columns={"index": "stage"})))
    if data.backends is not None:
        s = data.backends_settings
        parts.append("<h3>Backends: torch eager, TorchScript, ONNX Runtime</h3>")
        parts.append(
            f"<p>The same stream (block {s.block_time * 1000:.0f} ms, extra {s.extra_time:g} s, "
            f"{esc(s.f0_method if data.voice_summary.get('f0', True) else 'no F0')}, noise off) with the "
            "content encoder, generator and RMVPE run from exported files (<code>rvc-lab export</code>, "
            "<code>--backend</code>), median ms per block. <code>rel_l2_vs_torch</code>: how far the streamed "
            "output moves from eager's; the SOLA offsets of every block should be the same.</p>")
        parts.append(table(data.backends.reset_index(), digits=3))
    if data.scaling is not None:
        parts.append("<h3>Cost against extra time and block time</h3>")
        parts.append(
            "<p>Median compute per block over a sweep of extra_time (at the fixed block time) and "
            "block_time (at the fixed extra time), exact float32 and bfloat16 side by side in one run, "
            "with the least-squares model <code>ms = fixed + a·context_s + b·decoded_s</code> (context: "
            "the ring HuBERT and the text encoder see; decoded: the audio the decoder synthesises per "
            "block). <code>realtime_extra_s_block_*</code>: the longest extra_time the model keeps "
            "within real time at that block time (negative: none).</p>")
        parts.append(table(data.scaling_fit.reset_index(names="precision"), digits=3))
        parts.append(img(perf_plots.plot_scaling(data.scaling, data.scaling_fit), "cost scaling"))

    # --- sweep
    parts.extend(_sweep_section(data))
    parts.extend(index_study_section(data.index_study))

    # --- metrics
    parts.append("<h2 id='metrics'>Metric tables</h2>")
    parts.append("<h3>F0 methods (mean over test signals)</h3>")
    parts.append(table(data.f0_summary.reset_index(), digits=3))
    parts.append(f"<h3>Streaming vs offline per stage (block {d.settings.block_time:g} s, extra "
                 f"{d.settings.extra_time:g} s)</h3>")
    parts.append(table(d.stages))
    parts.append(f"<p class='note'>Estimated stream delay {1000 * d.delay_samples / d.sr:.1f} ms; the geometry "
                 f"predicts {1000 * d.expected_delay_samples / d.sr:.1f} ms (crossfade + search − median SOLA "
                 f"offset). HuBERT grid offset between the chains: {d.grid_offset_ms:g} ms.</p>")
    parts.append("<h3>Streaming-vs-offline sweep</h3>")
    parts.append(table(data.parity_sweep))

    # --- environment
    parts.append("<h2 id='environment'>Environment</h2>")
    parts.append(key_values(data.environment.items()))
    parts.append(table(pd.DataFrame([(k, f"{v:.1f}") for k, v in data.timings_s.items()],
                                     columns=["section", "seconds"])))
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>rvc_lab report</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def _sweep_section(data: ReportData) -> list[str]:
    esc = html.escape
    parts = ["<h2 id='sweep'>Effect of each swept setting</h2>"]
    params = swept_parameters(data.sweep)
    parts.append(f"<p>From {esc(data.sweep_source)}: {data.sweep['cell'].nunique()} cells "
                 f"(<code>rvc-lab sweep</code>, <code>rvc_lab.sweep</code>). Each point is a metric's mean over every "
                 "cell with that value of the setting (the other settings and inputs averaged over), with a 95 % "
                 "bootstrap interval over those cells. Run a larger study with <code>rvc-lab sweep "
                 "studies/demo.yaml -o OUT</code> and show it here with <code>rvc-lab report --sweep OUT</code>.</p>")
    if data.synthetic:
        parts.append("<p class='note'>Random-weight voice: parity, F0 and cost figures are real; nothing here "
                     "says how a trained voice sounds.</p>")
    skipped = data.sweep[data.sweep["status"] != "ok"]
    if len(skipped):
        reasons = skipped.groupby(["measure", "status", "reason"]).size().reset_index(name="rows")
        parts.append("<p class='note'>Rows without a value (not computed or failed):</p>" + table(reasons))
    if not params or data.sweep_effects.empty:
        parts.append("<p class='note'>Nothing was swept or no metric has a value: no effect to plot.</p>")
        return parts
    for metric in section_metrics(data.sweep_effects):
        parts.append(img(plots.plot_sweep_effects(data.sweep_effects, metric), f"sweep effect on {metric}"))
    parts.append(table(data.sweep_effects))
    return parts


def write_report(data: ReportData, output_dir: str | os.PathLike) -> Path:
    """Write ``index.html`` and the tables (CSV, JSON) into ``output_dir``; returns the HTML path.

    Every file is written to a temporary name and renamed, so a reader never sees half a report.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    def put(name: str, text: str) -> Path:
        return write_text_atomic(out / name, text)

    put("f0_bench.csv", data.f0_bench.to_csv(index=False))
    put("parity_sweep.csv", data.parity_sweep.to_csv(index=False))
    put("parity_stages.csv", data.parity_detail.stages.to_csv(index=False))
    if data.latency:
        put("latency_trace.csv", data.latency[0].trace.to_csv(index=False))
        put("latency_summary.csv", pd.DataFrame([lp.row() for lp in data.latency]).to_csv(index=False))
    if data.backends is not None:
        put("backends.csv", data.backends.to_csv())
    if data.scaling is not None:
        put("scaling.csv", data.scaling.to_csv(index=False))
        put("scaling_fit.csv", data.scaling_fit.to_csv(index_label="precision"))
    if data.sweep is not None:
        put("sweep_results.csv", data.sweep.to_csv(index=False))
        put("sweep_effects.csv", data.sweep_effects.to_csv(index=False))
    if data.index_study is not None:
        put("index_study.csv", data.index_study.to_csv(index=False))
    summary = {"synthetic_weights": data.synthetic, "quick": data.plan.quick, "environment": data.environment,
               "timings_s": data.timings_s, "plan": asdict(data.plan), "voice": asdict(data.voice),
               "parity": data.parity_detail.summary(), "input": data.speech_description}
    put("report.json", json.dumps(summary, indent=2, default=str) + "\n")
    return put("index.html", render_html(data))


def build_report(output_dir: str | os.PathLike = "reports/default", *, model=None, hubert=None, index=None,
                 rmvpe=None, input=None, quick: bool = False, sweep=None) -> Path:
    """Run the measurements and write the report; returns the path of ``index.html``.

    Without ``model`` the seeded demo assets are used (written once into the cache, see
    :func:`default_cache_dir`).  ``model`` needs ``hubert``.  ``sweep``: the folder of an
    ``rvc-lab sweep`` run to show (default: the report runs a small study of its own).
    """
    plan = Plan.for_run(quick)
    if sweep is not None and not (Path(sweep) / "results.parquet").is_file():
        raise SettingsError(f"report: --sweep {sweep}: no results.parquet there (the output folder of rvc-lab sweep)")
    if model:
        if not hubert:
            raise SettingsError("report: --model needs --hubert (hubert_base.pt or a Hugging Face HuBERT directory)")
        voice = VoiceFiles(name=Path(model).name, model=str(model), hubert=str(hubert),
                           index=str(index) if index else None, rmvpe=str(rmvpe) if rmvpe else None)
    else:
        if hubert or index:
            raise SettingsError("report: --hubert/--index only apply with --model (without it the demo assets are used)")
        voice = demo_voice_files()
        if rmvpe:
            voice = replace(voice, rmvpe=str(rmvpe))
    t = time.perf_counter()
    data = collect(voice, plan, input_path=input, sweep_dir=sweep)
    path = write_report(data, output_dir)
    log.info("wrote %s in %.0f s", path, time.perf_counter() - t)
    return path


def main_report(args) -> int:
    """``rvc-lab report`` (arguments from :func:`rvc_lab.cli.build_parser`)."""
    path = build_report(args.output_dir, model=args.model, hubert=args.hubert, index=args.index, rmvpe=args.rmvpe,
                        input=args.input, quick=bool(getattr(args, "quick", False)), sweep=getattr(args, "sweep", None))
    print(f"report: {path}")
    return 0
