"""ipywidgets panels for the notebooks: controls in front of the tested functions, nothing more.

Each panel builds its controls, renders into its own ``Output`` area and has a :meth:`Panel.run`
method that does what the Run button does, so a notebook executed headless (CI) runs every panel
once with its current values.  Environment variable ``RVC_LAB_QUICK=1`` makes
:func:`notebook_config` (the one :class:`rvc_lab.plan.Plan` of the report and the notebooks) pick
tiny inputs and cheap F0 methods.

Typical cell::

    from rvc_lab import widgets
    wb = widgets.Workbench()             # demo voices + offline speech, or add your own files
    panel = widgets.AuditionPanel(wb)
    panel.show()
    panel.run()
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rvc_lab import plots
from rvc_lab.audio import load_audio, prepare_input, resample_offline
from rvc_lab.convert.offline import OfflineSettings, convert_offline
from rvc_lab.convert.streaming import StreamingConverter, StreamSettings, stream_file
from rvc_lab.errors import SettingsError
from rvc_lab.export.backends import BACKENDS
from rvc_lab.f0 import F0Estimator
from rvc_lab.files.synthetic import default_cache_dir
from rvc_lab.files.voices import VoiceFiles, demo_voice_files, demo_voice_names
from rvc_lab.instrument import StageTimer
from rvc_lab.live import LiveConverter, PassthroughConverter
from rvc_lab.live_plots import plot_latency_probe
from rvc_lab.live_session import (
    MEASURE_THRESHOLD_DB,
    StreamPorts,
    check_devices,
    loopback_measurement,
    private_jack_server,
)
from rvc_lab.metrics.compare import compare_audio
from rvc_lab.parity import parity_stream_settings, parity_sweep
from rvc_lab.perf import profile_stream
from rvc_lab.plan import Plan, grid_yaml
from rvc_lab.plots import figure_to_png
from rvc_lab.speech import speech_input
from rvc_lab.sweep import read_results, run_study
from rvc_lab.sweep.effects import parameter_effects
from rvc_lab.sweep.report import small_study

log = logging.getLogger(__name__)


def notebook_config(quick: bool | None = None) -> Plan:
    """The notebooks' :class:`rvc_lab.plan.Plan`: interactive defaults, or tiny ones when ``quick``
    (default: ``RVC_LAB_QUICK``, :func:`rvc_lab.plan.quick_mode`)."""
    return Plan.for_run(quick)


# ----------------------------------------------------------------------------- shared state
class Workbench:
    """Voices, loaded models and inputs shared by the panels of one notebook.

    Parameters
    ----------
    config : Plan, optional
    demo : bool
        Register the seeded demo voices (random weights; written once into the cache).
    cache_dir : path-like, optional
        Where demo assets and rendered speech are kept (default :func:`rvc_lab.files.synthetic.default_cache_dir`).
    """

    def __init__(self, config: Plan | None = None, demo: bool = True, cache_dir=None):
        self.config = config or notebook_config()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.voices: dict[str, VoiceFiles] = {}
        self.inputs: dict[str, tuple[np.ndarray, int]] = {}
        self._models: dict[str, object] = {}
        if demo:
            for name in demo_voice_names():
                self.voices[name] = demo_voice_files(name, cache_dir=self.cache_dir)
        self._add_default_inputs(demo)

    def _add_default_inputs(self, demo: bool) -> None:
        sp = speech_input(max_seconds=self.config.input_seconds, sr=self.config.stream_sr,
                          cache_dir=self.cache_dir / "speech")
        self.inputs[f"speech ({sp.source})"] = (sp.audio, sp.sr)
        if demo:
            any_voice = next(iter(self.voices.values()))
            tone = Path(any_voice.model).parents[1] / "audio" / "tone_48k.wav"
            if tone.exists():
                x, sr = load_audio(tone)
                self.inputs["demo tone (glide)"] = (x[: int(self.config.input_seconds * sr)], sr)

    # voices
    def add_voice(self, name: str, model: str, hubert: str, index: str | None = None,
                  rmvpe: str | None = None) -> VoiceFiles:
        """Register your own files (loaded on first use; errors name the bad file)."""
        vf = VoiceFiles(name=name, model=str(model), hubert=str(hubert), index=index or None, rmvpe=rmvpe or None)
        self.voices[name] = vf
        self._models.pop(name, None)
        return vf

    def models(self, name: str | None = None, backend: str = "torch"):
        """Loaded :class:`ConverterModels` of a registered voice (cached).

        ``backend`` "torchscript" or "onnx": the content encoder, generator and RMVPE run from the
        voice's exported bundle (exported once into the cache on first use).
        """
        name = name or next(iter(self.voices))
        key = name if backend == "torch" else (name, backend)
        if key not in self._models:
            self._models[key] = self.voices[name].load(backend)
        return self._models[key]

    # inputs
    def add_input_file(self, path: str, name: str | None = None) -> str:
        """Load an audio file as an input (mono; resampled to the stream rate when needed)."""
        x, sr = load_audio(path)
        key = name or Path(path).name
        self.inputs[key] = (x, sr)
        return key

    def input(self, name: str | None = None) -> tuple[np.ndarray, int]:
        """(float32 audio, rate) of an input at a streamable rate (multiple of 100 Hz)."""
        name = name or next(iter(self.inputs))
        x, sr = self.inputs[name]
        if sr % 100:
            x = np.asarray(resample_offline(x, sr, self.config.stream_sr), dtype=np.float32)
            sr = self.config.stream_sr
        return x, sr


# ----------------------------------------------------------------------------- logic
@dataclass
class Conversion:
    """Offline and streamed conversion of one input with matching settings."""

    input: np.ndarray
    input_sr: int
    offline: np.ndarray
    offline_sr: int
    stream: np.ndarray
    stream_sr: int
    offline_s: float
    stream_s: float
    trace: pd.DataFrame = field(default_factory=pd.DataFrame)


def convert_both(models, audio: np.ndarray, sr: int, offline_settings, stream_settings) -> Conversion:
    """Convert ``audio`` offline (whole file) and streaming (block by block) and time both."""
    import time

    t = time.perf_counter()
    off = convert_offline(models, prepare_input(audio, sr), offline_settings)
    t_off = time.perf_counter() - t
    timer = StageTimer(enabled=True)
    t = time.perf_counter()
    out, out_sr, _ = stream_file(models, audio, sr, stream_settings, timer=timer)
    t_stream = time.perf_counter() - t
    return Conversion(input=audio, input_sr=sr, offline=off.audio.astype(np.float32) / 32768.0, offline_sr=off.sr,
                      stream=out, stream_sr=out_sr, offline_s=t_off, stream_s=t_stream, trace=timer.to_frame())


def _audio(x: np.ndarray, sr: int):
    from IPython.display import Audio

    x = np.asarray(x, dtype=np.float32)
    x = x - float(np.mean(x))  # random-weight voices output a DC offset; remove it before playback
    return Audio(x, rate=sr, normalize=True)


def _labelled(label: str, obj):
    import ipywidgets as w

    out = w.Output()
    with out:
        from IPython.display import display

        display(obj)
    return w.VBox([w.HTML(f"<b>{label}</b>"), out])


def show_figure(fig) -> None:
    """Display a matplotlib figure as a PNG (works with any backend, also headless)."""
    from IPython.display import Image, display

    display(Image(figure_to_png(fig)))


# ----------------------------------------------------------------------------- panels
class Panel:
    """Controls + Run button + output area; subclasses implement :meth:`compute` and :meth:`render`."""

    title = ""

    def __init__(self):
        import ipywidgets as w

        self.output = w.Output()
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.button.on_click(lambda _: self.run())
        self.status = w.HTML()
        self.result = None

    def controls(self) -> list:
        return []

    @property
    def widget(self):
        import ipywidgets as w

        return w.VBox([w.HTML(f"<h3>{self.title}</h3>"), *self.controls(), w.HBox([self.button, self.status]),
                       self.output])

    def show(self) -> None:
        from IPython.display import display

        display(self.widget)

    def run(self):
        """Compute with the current control values and render into the output area; returns the result."""
        from IPython.display import clear_output

        self.status.value = "running…"
        try:
            self.result = self.compute()
        except Exception as exc:
            self.status.value = f"<span style='color:#b00'>{type(exc).__name__}: {exc}</span>"
            raise
        # an Output widget swallows exceptions raised inside it (it shows them in the widget), so
        # a failed render would pass unnoticed in a headless run: catch it here and raise it outside
        failed = None
        with self.output:
            clear_output(wait=True)
            try:
                self.render(self.result)
            except Exception as exc:
                failed = exc
        if failed is not None:
            self.status.value = f"<span style='color:#b00'>{type(failed).__name__}: {failed}</span>"
            raise failed
        self.status.value = "done"
        return self.result

    def compute(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def render(self, result) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


def _dropdown(options, value=None, description=""):
    import ipywidgets as w

    options = list(options)
    return w.Dropdown(options=options, value=value if value in options else (options[0] if options else None),
                      description=description, style={"description_width": "initial"},
                      layout=w.Layout(width="auto"))


def _slider(kind, description, value, lo, hi, step):
    import ipywidgets as w

    cls = w.FloatSlider if kind is float else w.IntSlider
    return cls(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False,
               style={"description_width": "initial"})


class FilesPanel(Panel):
    """Register your own voice files or an input file with the workbench."""

    title = "Your files"

    def __init__(self, workbench: Workbench):
        import ipywidgets as w

        super().__init__()
        self.wb = workbench
        self.button.description = "Add"
        t = {"style": {"description_width": "initial"}, "layout": w.Layout(width="95%")}
        self.name = w.Text(value="my voice", description="name", **t)
        self.model = w.Text(placeholder="/path/voice.pth", description="voice .pth", **t)
        self.hubert = w.Text(placeholder="/path/hubert_base.pt or HF dir", description="hubert", **t)
        self.index = w.Text(placeholder="optional added_*.index", description="index", **t)
        self.rmvpe = w.Text(placeholder="optional rmvpe.pt", description="rmvpe", **t)
        self.input_path = w.Text(placeholder="optional input .wav/.flac", description="input audio", **t)

    def controls(self):
        return [self.name, self.model, self.hubert, self.index, self.rmvpe, self.input_path]

    def compute(self):
        added = []
        if self.model.value.strip():
            vf = self.wb.add_voice(self.name.value.strip() or "my voice", self.model.value.strip(),
                                   self.hubert.value.strip(), self.index.value.strip() or None,
                                   self.rmvpe.value.strip() or None)
            self.wb.models(vf.name)  # load now: a bad file fails here, with its name
            added.append(f"voice {vf.name}")
        if self.input_path.value.strip():
            added.append(f"input {self.wb.add_input_file(self.input_path.value.strip())}")
        return added

    def render(self, result):
        print("added: " + (", ".join(result) if result else "nothing (fill a path first)"))
        print("voices:", ", ".join(self.wb.voices), "| inputs:", ", ".join(self.wb.inputs))


class _ChainControls:
    """Voice, input and the common conversion settings."""

    def __init__(self, wb: Workbench):
        cfg = wb.config
        self.wb = wb
        self.voice = _dropdown(wb.voices, description="voice")
        self.input = _dropdown(wb.inputs, description="input")
        self.f0 = _dropdown(cfg.f0_choices, cfg.f0_method, "F0 method")
        self.pitch = _slider(int, "pitch (semitones)", 0, -24, 24, 1)
        self.index_rate = _slider(float, "index rate", 0.0, 0.0, 1.0, 0.05)
        self.block = _slider(float, "block time (s)", cfg.block_time, 0.05, 1.0, 0.01)
        self.extra = _slider(float, "extra time (s)", cfg.extra_time, 0.0, 5.0, 0.1)
        self.crossfade = _slider(float, "crossfade (s)", cfg.crossfade_time, 0.01, 0.2, 0.01)

    def refresh(self):
        """Pick up voices/inputs added since the controls were made (keeps the current choice)."""
        for control, names in ((self.voice, list(self.wb.voices)), (self.input, list(self.wb.inputs))):
            if list(control.options) != names:
                current = control.value
                control.options = names
                control.value = current if current in names else names[0]

    def source_row(self):
        """The voice, input and F0-method dropdowns in one row."""
        import ipywidgets as w

        return w.HBox([self.voice, self.input, self.f0])

    def selection(self) -> tuple:
        """After :meth:`refresh`: (loaded models of the chosen voice, audio, rate of the chosen input)."""
        self.refresh()
        models = self.wb.models(self.voice.value)
        x, sr = self.wb.input(self.input.value)
        return models, x, sr

    def list(self, stream: bool = True):
        import ipywidgets as w

        rows = [self.source_row(), w.HBox([self.pitch, self.index_rate])]
        if stream:
            rows.append(w.HBox([self.block, self.extra, self.crossfade]))
        return rows

    def offline_settings(self, noise: bool = False):
        return OfflineSettings(f0_method=self.f0.value, pitch=self.pitch.value, index_rate=self.index_rate.value,
                               noise=noise)

    def stream_settings(self, noise: bool = False):
        return StreamSettings(block_time=self.block.value, extra_time=self.extra.value,
                              crossfade_time=min(self.crossfade.value, self.block.value), f0_method=self.f0.value,
                              pitch=self.pitch.value, index_rate=self.index_rate.value, noise=noise)


class AuditionPanel(Panel):
    """Hear the input, the offline output and the streamed output of one setting."""

    title = "Audition: input, offline, streaming"

    def __init__(self, workbench: Workbench):
        super().__init__()
        self.wb = workbench
        self.chain = _ChainControls(workbench)

    def controls(self):
        return self.chain.list(stream=True)

    def compute(self) -> Conversion:
        models, x, sr = self.chain.selection()
        return convert_both(models, x, sr, self.chain.offline_settings(), self.chain.stream_settings())

    def render(self, c: Conversion):
        import ipywidgets as w
        from IPython.display import display

        vf = self.wb.voices[self.chain.voice.value]
        if vf.synthetic:
            display(w.HTML("<i>Random-weight demo voice: the outputs are noise-like by design "
                           "(timing and parity are real; timbre is not).</i>"))
        display(w.HBox([_labelled(f"input ({c.input_sr} Hz)", _audio(c.input, c.input_sr)),
                        _labelled(f"offline ({c.offline_sr} Hz, {c.offline_s:.1f} s)", _audio(c.offline, c.offline_sr)),
                        _labelled(f"streamed ({c.stream_sr} Hz, {c.stream_s:.1f} s)", _audio(c.stream, c.stream_sr))]))


class ABPanel(Panel):
    """Offline conversion with two settings side by side, and how far apart the outputs are."""

    title = "A/B: two settings"

    def __init__(self, workbench: Workbench):
        super().__init__()
        self.wb = workbench
        self.a = _ChainControls(workbench)
        self.b = _ChainControls(workbench)
        self.b.pitch.value = 12
        for c in (self.b.voice, self.b.input):
            c.disabled = True  # A and B differ in settings only

    def controls(self):
        import ipywidgets as w

        return [w.HTML("<b>A</b>"), *self.a.list(stream=False), w.HTML("<b>B</b>"),
                w.HBox([self.b.f0, self.b.pitch, self.b.index_rate])]

    def compute(self) -> dict:
        models, x, sr = self.a.selection()
        x16 = prepare_input(x, sr)
        outs = {}
        for label, ctl in (("A", self.a), ("B", self.b)):
            r = convert_offline(models, x16, ctl.offline_settings())
            outs[label] = (r.audio.astype(np.float32) / 32768.0, r.sr, ctl.offline_settings())
        (ya, sra, _), (yb, _, _) = outs["A"], outs["B"]
        metrics = compare_audio(yb - yb.mean(), ya - ya.mean(), sra, align=True, max_delay_s=0.05, f0_method="dio")
        return {"outputs": outs, "metrics": metrics}

    def render(self, result):
        import ipywidgets as w
        from IPython.display import display

        boxes = []
        for label, (y, sr, s) in result["outputs"].items():
            boxes.append(_labelled(f"{label}: {s.f0_method}, pitch {s.pitch:+g}, index {s.index_rate:g}", _audio(y, sr)))
        display(w.HBox(boxes))
        m = result["metrics"]
        keys = ("delay_ms", "rel_l2", "snr_db", "mcd_db", "log_spectral_distance_db", "f0_corr", "f0_cents_mae")
        display(pd.DataFrame({"B vs A": [m[k] for k in keys]}, index=list(keys)))


class ParityPanel(Panel):
    """Streaming vs offline divergence per stage over extra_time (and block_time)."""

    title = "Streaming vs offline"

    def __init__(self, workbench: Workbench):
        import ipywidgets as w

        super().__init__()
        self.wb = workbench
        cfg = workbench.config
        self.chain = _ChainControls(workbench)
        self.extras = w.Text(value=", ".join(f"{v:g}" for v in cfg.parity_extra_times), description="extra times (s)",
                             style={"description_width": "initial"})
        self.blocks = w.Text(value=", ".join(f"{v:g}" for v in cfg.parity_block_times), description="block times (s)",
                             style={"description_width": "initial"})

    def controls(self):
        import ipywidgets as w

        return [self.chain.source_row(), w.HBox([self.extras, self.blocks])]

    def compute(self):
        models, x, sr = self.chain.selection()
        extras = [float(v) for v in self.extras.value.replace(";", ",").split(",") if v.strip()]
        blocks = [float(v) for v in self.blocks.value.replace(";", ",").split(",") if v.strip()]
        base = parity_stream_settings(f0_method=self.chain.f0.value, block_time=blocks[0])
        return parity_sweep(models, x, sr, base, extra_times=extras, block_times=blocks, keep_results=True)

    def render(self, sweep):
        from IPython.display import display

        display(sweep.drop(columns=["crossfade_time"]).round(4))
        show_figure(plots.plot_parity_sweep(sweep))
        detail = max(sweep.attrs["results"], key=lambda r: r.settings.extra_time)
        display(detail.stages.round(4))
        show_figure(plots.plot_parity_blocks(detail))
        show_figure(plots.plot_parity_waveforms(detail, seconds=1.5))


class F0Panel(Panel):
    """Pick test tones and methods: estimated vs true F0, and that tone's scores."""

    title = "F0 on a test tone"

    def __init__(self, results: pd.DataFrame, suite, rmvpe_path: str | None = None):
        import ipywidgets as w

        super().__init__()
        self.results = results
        self.suite = {c.name: c for c in suite}
        self.rmvpe_path = rmvpe_path
        ran = [m for m in dict.fromkeys(results["method"]) if (results.loc[results.method == m, "status"] == "ok").any()]
        self.tone = _dropdown(self.suite, description="test tone")
        self.methods = w.SelectMultiple(options=ran, value=tuple(ran), description="methods",
                                        rows=min(7, max(2, len(ran))))
        self._tracks: dict = {}

    def controls(self):
        import ipywidgets as w

        return [w.HBox([self.tone, self.methods])]

    def track(self, method: str, tone: str) -> np.ndarray:
        """F0 track (Hz, 10 ms) of ``method`` on a tone (cached)."""
        key = (method, tone)
        if key not in self._tracks:
            self._tracks[key] = F0Estimator(method, rmvpe_path=self.rmvpe_path).track(self.suite[tone].audio)
        return self._tracks[key]

    def compute(self):
        case = self.suite[self.tone.value]
        tracks = {m: self.track(m, case.name) for m in self.methods.value}
        scores = self.results[(self.results.signal == case.name) & self.results.method.isin(self.methods.value)]
        return case, tracks, scores

    def render(self, result):
        from IPython.display import display

        case, tracks, scores = result
        display(case.description)
        show_figure(plots.plot_f0_tracks(case.times, case.f0_hz, tracks, f"estimated vs true F0: {case.name}"))
        cols = ["method", "raw_pitch_accuracy", "cents_mae", "gross_pitch_error", "voicing_recall",
                "voicing_false_alarm", "f0_corr", "ms_per_s"]
        display(scores[cols].set_index("method").round(3))


class LatencyPanel(Panel):
    """Stage timing of the realtime chain: per-stage bars, per-block timeline, load histogram."""

    title = "Latency profile"

    def __init__(self, workbench: Workbench):
        super().__init__()
        self.wb = workbench
        self.chain = _ChainControls(workbench)
        self.threads = _slider(int, "torch threads", min(2, os.cpu_count() or 1), 1, max(1, os.cpu_count() or 1), 1)

        # torch eager, or the voice's exported files (TorchScript, ONNX Runtime)
        self.backend = _dropdown(BACKENDS, "torch", "backend")
        self.history: list = []

    def controls(self):
        import ipywidgets as w

        return [self.chain.source_row(), w.HBox([self.chain.block, self.chain.extra, self.chain.crossfade]),
                w.HBox([self.threads, self.backend])]

    def compute(self):
        models, x, sr = self.chain.selection()
        if self.backend.value != "torch":
            models = self.wb.models(self.chain.voice.value, self.backend.value)
        x = x[: int(self.wb.config.latency_seconds * sr)]
        s = self.chain.stream_settings(noise=True)
        prof = profile_stream(models, x, sr, s, threads=self.threads.value,
                              label=f"{s.block_time * 1000:.0f} ms / {s.extra_time:g} s / {s.f0_method} / "
                                    f"{self.threads.value} thr / {self.backend.value}")
        self.history.append(prof)
        return prof

    def render(self, prof):
        from IPython.display import display

        display(pd.DataFrame([p.row() for p in self.history]).round(3))
        show_figure(plots.plot_stage_breakdown({p.label: p.trace for p in self.history[-6:]}))
        show_figure(plots.plot_block_timeline(prof.trace))
        show_figure(plots.plot_load_histogram(prof.trace))
        display(prof.stages.round(2))


# ----------------------------------------------------------------------------- live audio
class LoopbackLatencyPanel(Panel):
    """Measured round trip through a loopback: passthrough and the chosen conversion side by side.

    The device is a private JACK server with the dummy driver (no sound card: the loop holds
    PortAudio's and the server's buffering, nothing physical) unless a PortAudio device whose
    output is cabled to its input is named.  Random-weight voices output noise unrelated to the
    input, so the conversion is measured by the energy onsets behind the silence gate.
    """

    title = "Measured latency (loopback)"

    def __init__(self, workbench: Workbench):
        import ipywidgets as w

        super().__init__()
        self.wb = workbench
        self.chain = _ChainControls(workbench)
        self.device = w.Text(value="", placeholder="blank: a private JACK loop (no sound card)",
                             description="looped device", style={"description_width": "initial"})
        self.delay_blocks = _slider(int, "queue (blocks)", 1 if not workbench.config.quick else 2, 1, 4, 1)
        self.bursts = _slider(int, "bursts", 6 if workbench.config.quick else 8, 4, 16, 1)
        self.history: list = []

    def controls(self):
        import ipywidgets as w

        return [self.chain.source_row(), w.HBox([self.chain.block, self.chain.extra, self.chain.crossfade]),
                w.HBox([self.device, self.delay_blocks, self.bursts])]

    def compute(self) -> dict:
        from dataclasses import replace

        device = self.device.value.strip() or None
        sr = private_jack_server().rate if device is None else check_devices(device, device).sample_rate
        models = self.wb.models(self.chain.voice.value)
        # silence gate on, so that a random-weight voice is silent between bursts
        settings = replace(self.chain.stream_settings(noise=True), threshold=MEASURE_THRESHOLD_DB,
                           precision="bf16" if self.wb.config.quick else "fp32")
        kw = dict(device=device, delay_blocks=self.delay_blocks.value, n_bursts=self.bursts.value)
        results = {"passthrough": loopback_measurement(PassthroughConverter(sr, settings.block_time), **kw),
                   "conversion": loopback_measurement(StreamingConverter(models, settings, sr), **kw)}
        self.history.append(results)
        return results

    def render(self, results):
        from IPython.display import display

        rows = []
        for mode, m in results.items():
            b = {k: 1000 * v for k, v in m.budget.items()}
            rows.append({"mode": mode, "measured_ms": m.round_trip.measured_ms, "formula_ms": m.formula_ms,
                         "bursts": f"{m.round_trip.n_found}/{m.round_trip.n_bursts}",
                         "agree_within_ms": m.round_trip.spread_ms, "device_loop_ms": m.device_loop.measured_ms,
                         "reported_device_ms": b["device_input_s"] + b["device_output_s"], "queue_ms": b["queue_s"],
                         "chain_ms": b["chain_s"], "upstream_displayed_ms": b["upstream_displayed_s"],
                         "gate": "pass" if m.passed else "FAIL"})
        display(pd.DataFrame(rows).set_index("mode").round(1))
        for mode, m in results.items():
            print(f"{mode}: {m.line}")
            for line in m.budget_lines():
                print("   ", line)
        show_figure(plot_latency_probe(results["conversion"]))


class LivePanel(Panel):
    """A live session you can steer: Run starts it, the sliders change its settings, Stop ends it.

    Devices as ``rvc-lab live`` (blank: a private JACK loop, which feeds the output back to the
    input: useful to watch load and late blocks, not to listen to).
    """

    title = "Live session"
    SETTINGS = ("pitch", "index_rate", "f0")

    def __init__(self, workbench: Workbench):
        import ipywidgets as w

        super().__init__()
        self.wb = workbench
        self.chain = _ChainControls(workbench)
        self.device = w.Text(value="", placeholder="blank: a private JACK loop", description="device",
                             style={"description_width": "initial"})
        self.stop_button = w.Button(description="Stop", icon="stop")
        self.stop_button.on_click(lambda _: self.stop())
        self.live = None
        self.applied: list[dict] = []
        for name, setting in (("pitch", "pitch"), ("index_rate", "index_rate"), ("f0", "f0_method")):
            getattr(self.chain, name).observe(lambda change, s=setting: self._changed(s, change["new"]), names="value")

    def controls(self):
        import ipywidgets as w

        return [self.chain.source_row(), w.HBox([self.chain.pitch, self.chain.index_rate]),
                w.HBox([self.chain.block, self.chain.extra, self.device, self.stop_button])]

    def _changed(self, setting: str, value) -> None:
        if self.live is not None and self.live.running:
            self.live.update(**{setting: value})
            self.applied.append({setting: value})
            self.status.value = f"running; set {setting}={value}"

    def compute(self):
        self.stop()
        device = self.device.value.strip() or None
        if device is None:
            private_jack_server()
        devices = check_devices(device, device)
        models = self.wb.models(self.chain.voice.value)
        settings = self.chain.stream_settings(noise=True)
        conv = StreamingConverter(models, settings, devices.sample_rate, timer=StageTimer(enabled=True))
        self.live = LiveConverter(conv, devices.input, devices.output, delay_blocks=2)
        ports = StreamPorts() if device is None else None
        self.live.start()
        if ports is not None:
            ports.loop()
        return self.live

    def render(self, live):
        print(f"running on {live.stream_latency()} s of reported device latency; move the sliders, then Stop")

    def stop(self) -> dict | None:
        """Stop the session (if any) and return its counters."""
        if self.live is None or not self.live.running:
            return None
        self.live.stop()
        stats = self.live.stats()
        self.status.value = (f"stopped: {stats['converted']} blocks converted, {stats['late_blocks']} late, "
                             f"{len(self.applied)} setting change(s)")
        return stats


class SweepPanel(Panel):
    """A sweep's effect per parameter: a small study run here (cells cached), or an ``rvc-lab sweep`` folder.

    Parameters
    ----------
    workbench : Workbench or None
        Voices to pick from (None: an F0-only study, ``measure`` without parity).
    measure : tuple of str
        Measurements of the study run here (:data:`rvc_lab.sweep.measures.MEASURES`).
    grid : str, optional
        YAML mapping of the swept settings (default: the config's ``sweep_grid``).
    settings : dict, optional
        Fixed settings of every cell.
    rmvpe_path : str, optional
        ``rmvpe.pt`` for an F0-only study that sweeps the rmvpe method.
    """

    title = "Sweep: the effect of each setting"

    def __init__(self, workbench: Workbench | None, measure=("parity", "f0"), grid: str | None = None,
                 settings: dict | None = None, rmvpe_path: str | None = None, config: Plan | None = None):
        import ipywidgets as w

        super().__init__()
        self.wb = workbench
        self.cfg = config or (workbench.config if workbench else notebook_config())
        self.measure, self.settings, self.rmvpe_path = tuple(measure), dict(settings or {}), rmvpe_path
        self.voice = _dropdown(workbench.voices, description="voice") if workbench else None
        default = grid_yaml(self.cfg.sweep_grid if "parity" in self.measure else self.cfg.f0_sweep_grid)
        text = dict(style={"description_width": "initial"}, layout=w.Layout(width="60%"))
        self.grid = w.Text(value=grid or default, description="grid (YAML)", **text)
        self.folder = w.Text(value="", description="or an rvc-lab sweep output folder", **text)
        self.metric = _dropdown([], description="metric")
        self.metric.observe(lambda _: self._redraw_in_output(), names="value")
        self.effects = None

    def controls(self):
        return [c for c in (self.voice, self.grid, self.folder, self.metric) if c is not None]

    def study(self):
        """The study the controls describe (checked: a bad grid raises before anything runs)."""
        import yaml

        grid = yaml.safe_load(self.grid.value)
        if not isinstance(grid, dict):
            raise SettingsError(f"grid {self.grid.value!r}: write a mapping, e.g. {{extra_time: [0.5, 2.5]}}")
        voice = self.wb.voices[self.voice.value] if self.voice is not None else None
        return small_study(voice, grid, measure=self.measure, tones=self.cfg.sweep_tones,
                           seconds=self.cfg.sweep_seconds, settings=self.settings, rmvpe=self.rmvpe_path,
                           name="notebook")

    def compute(self) -> pd.DataFrame:
        if self.folder.value.strip():
            return read_results(self.folder.value.strip())
        cache = (self.wb.cache_dir if self.wb else default_cache_dir()) / "notebook_sweeps"
        return run_study(self.study(), cache, serial=True, progress=False).table

    def render(self, table: pd.DataFrame) -> None:
        effects = parameter_effects(table)
        metrics = list(dict.fromkeys(effects["metric"]))
        keep = self.metric.value if self.metric.value in metrics else (metrics[0] if metrics else None)
        self.effects = None  # the dropdown's own redraw waits for the new table
        self.metric.options = metrics
        self.metric.value = keep
        self.effects = effects
        self._redraw()

    def _redraw_in_output(self) -> None:
        """The dropdown's redraw (outside :meth:`Panel.run`, which already draws into the output)."""
        with self.output:
            self._redraw()

    def _redraw(self) -> None:
        from IPython.display import clear_output, display

        if self.effects is None or not self.metric.value:
            return
        clear_output(wait=True)
        if self.wb is not None and any(v.synthetic for v in self.wb.voices.values()):
            display("Random-weight demo voices: parity, F0 and cost are real; the sound is not a voice.")
        show_figure(plots.plot_sweep_effects(self.effects, self.metric.value))
        display(self.effects[self.effects["metric"] == self.metric.value].round(4))
