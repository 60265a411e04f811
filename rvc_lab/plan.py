"""The sizes and defaults of a workbench run: one plan for the report and the notebooks.

``rvc-lab report`` and every notebook take their input lengths, stream settings, F0 methods, sweep
grids and latency profiles from one :class:`Plan`.  :meth:`Plan.for_run` gives the interactive
defaults, or tiny ones with ``quick`` (tests and CI; the environment variable ``RVC_LAB_QUICK=1``
selects them in the notebooks).  A plan holds values only: nothing here loads a model.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass


def quick_mode() -> bool:
    """True when ``RVC_LAB_QUICK`` is set to anything but ``""``/``"0"`` (CI runs of the notebooks)."""
    return os.environ.get("RVC_LAB_QUICK", "") not in ("", "0")


def grid_yaml(grid: tuple) -> str:
    """A sweep grid of (setting, values) pairs as the one-line YAML mapping a notebook's text box shows.

    >>> grid_yaml((("f0_method", ("fcpe", "pm")), ("extra_time", (0.5, 2.5))))
    '{f0_method: [fcpe, pm], extra_time: [0.5, 2.5]}'
    """
    return "{" + ", ".join(f"{name}: [{', '.join(str(v) for v in values)}]" for name, values in grid) + "}"


@dataclass(frozen=True)
class Plan:
    """Sizes of a run (the default targets a few minutes of report on 2 cores, ``quick`` well under one).

    Attributes
    ----------
    quick : bool
        Tiny sizes for tests and CI.
    input_seconds : float
        Speech cut to this length for conversions (s).
    stream_sr : int
        Simulated device rate (Hz) for streaming.
    block_time, extra_time, crossfade_time : float
        Stream settings the notebooks' panels start from (s).
    f0_method : str
        F0 method of the panels and of the report's parity runs.
    f0_choices : tuple of str
        F0 methods a panel offers.
    parity_extra_times, parity_block_times : tuple of float
        Streaming-vs-offline sweep grid (s).  Block times of whole 20 ms keep the HuBERT grids
        of both chains aligned (see :mod:`rvc_lab.parity`).
    bench_methods : tuple of str
        F0 methods of the tone-suite table (crepe full costs ~7 s per second of audio on 2 cores).
    bench_signals : tuple of str or None
        Tone-suite subset (None: all 15).
    bench_seconds : float
        Length of each test tone (s).
    latency_configs : tuple of dict
        StreamSettings overrides (plus ``threads``: torch threads), one latency profile each.
    latency_seconds : float
        Input length for latency runs (s).
    backends : tuple of str
        Exported backends the report times beside torch eager (the voice is exported once into the cache).
    synthetic_rmvpe_signals : tuple of str
        Signals the random-weight rmvpe runs on (its accuracy means nothing; only its cost does).
    sweep_grid : tuple of (str, tuple)
        The parity-and-F0 sweep of the report and of notebook 02: (setting, values) pairs.
    f0_sweep_grid : tuple of (str, tuple)
        The F0-only sweep of notebook 03.
    sweep_tones : tuple of str
        Tone-suite names the sweeps run on (each with exact F0 truth).
    sweep_seconds : float
        Length of each sweep tone (s).
    """

    quick: bool = False
    input_seconds: float = 3.0
    stream_sr: int = 48000
    block_time: float = 0.25
    extra_time: float = 1.0
    crossfade_time: float = 0.05
    f0_method: str = "fcpe"
    f0_choices: tuple = ("pm", "harvest", "dio", "crepe", "crepe-tiny", "rmvpe", "fcpe")
    parity_extra_times: tuple = (0.1, 0.5, 1.0, 2.5)
    parity_block_times: tuple = (0.2, 0.4)
    bench_methods: tuple = ("pm", "harvest", "dio", "crepe-tiny", "rmvpe", "fcpe")
    bench_signals: tuple | None = None
    bench_seconds: float = 1.0
    latency_configs: tuple = (
        {"block_time": 0.25, "extra_time": 2.5, "f0_method": "rmvpe"},
        {"block_time": 0.25, "extra_time": 2.5, "f0_method": "fcpe"},
        {"block_time": 0.25, "extra_time": 2.5, "f0_method": "fcpe", "threads": 1},
        {"block_time": 0.25, "extra_time": 1.0, "f0_method": "fcpe"},
        {"block_time": 0.1, "extra_time": 0.5, "f0_method": "fcpe"},
    )
    latency_seconds: float = 2.5
    backends: tuple = ("torchscript", "onnx")
    synthetic_rmvpe_signals: tuple = ("complex_220", "glide_120_480", "noisy_220_snr10")
    sweep_grid: tuple = (("f0_method", ("fcpe", "pm")), ("extra_time", (0.5, 2.5)))
    f0_sweep_grid: tuple = (("f0_method", ("pm", "harvest", "dio", "fcpe")),)
    sweep_tones: tuple = ("complex_220", "vibrato_300", "glide_120_480")
    sweep_seconds: float = 2.0

    @classmethod
    def for_run(cls, quick: bool | None = None) -> "Plan":
        """The interactive defaults, or the tiny ``quick`` ones (default: :func:`quick_mode`)."""
        if quick is None:
            quick = quick_mode()
        if not quick:
            return cls()
        return cls(quick=True, input_seconds=0.6, stream_sr=16000, block_time=0.2, extra_time=0.3,
                   f0_method="pm", parity_extra_times=(0.1, 0.4), parity_block_times=(0.2,),
                   bench_methods=("pm", "dio", "fcpe"),
                   bench_signals=("sine_440", "complex_220", "glide_120_480", "gaps_200"), bench_seconds=0.5,
                   latency_configs=({"block_time": 0.2, "extra_time": 0.3, "f0_method": "fcpe"},),
                   latency_seconds=0.6, backends=("onnx",),
                   sweep_grid=(("f0_method", ("fcpe", "pm")), ("extra_time", (0.5,))),
                   f0_sweep_grid=(("f0_method", ("pm", "fcpe")),),
                   sweep_tones=("complex_220", "glide_120_480"), sweep_seconds=0.6)

    def replace(self, **changes) -> "Plan":
        """A copy with some fields changed (e.g. ``plan.replace(input_seconds=10)``)."""
        return dataclasses.replace(self, **changes)
