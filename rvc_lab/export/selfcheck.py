"""Parity self-check of freshly exported files against eager rvc_lab, run before a bundle is kept.

Each exported file is loaded back with its runtime and run at lengths and windows other than
the trace's example (so a size frozen by tracing shows up), against the eager module it came
from.  Gates are upstream's parity targets: content features <= 1e-5 and generator audio <= 1e-4
relative L2 (the same figures the test suite holds eager rvc_lab to against upstream).
float16/bfloat16 files are measured on the same calls instead (:func:`measure_bundle_files`).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from rvc_lab import testsignals
from rvc_lab.errors import RVCLabError
from rvc_lab.export import content, generator
from rvc_lab.export import fcpe as fcpe_export
from rvc_lab.export import rmvpe as rmvpe_export
from rvc_lab.export.backends import runner
from rvc_lab.export.formats import cast_to_spec
from rvc_lab.metrics.mcd import mcd
from rvc_lab.metrics.spectral import mean_frame_cosine, rel_l2, snr_db

GATES = {"content_encoder": 1e-5, "generator": 1e-4, "rmvpe": 1e-4, "fcpe": 1e-4}
#: (frames, skip_head, return_length, return_length2): a whole call, a streaming window, a formant stretch
GENERATOR_WINDOWS = ((37, 0, 37, 37), (90, 40, 30, 30), (64, 10, 40, 46))
AUDIO_LENGTHS = (7040, 24000)
#: FCPE's calls: (samples, f0 Hz) of harmonic tones; lengths other than the trace's and not multiples of 160
FCPE_TONES = ((7041, 220.0), (24037, 440.0))


class ExportCheckError(RVCLabError):
    """An exported file computes something else than the eager model (stage, runtime, figure)."""


def _calls(gen_module) -> dict:
    """The check's calls per stage: ``{stage: [(label, float32 inputs), ...]}``."""
    audio_calls = [(f"{n} samples", content.example_audio(n, seed=n)) for n in AUDIO_LENGTHS]
    generator_calls = [
        (f"T={frames} window=({skip}, {ret}, {ret2})",
         _seeded_noise(generator.example_inputs(gen_module, frames, skip, ret, ret2, seed=frames), gen_module, frames))
        for frames, skip, ret, ret2 in GENERATOR_WINDOWS
    ]  # fmt: skip
    tone_calls = [(f"{n} samples of a {f0:g} Hz tone",
                   (torch.from_numpy(testsignals.harmonic_complex(f0, seconds=n / 16000).audio[:n])[None],))
                  for n, f0 in FCPE_TONES]
    return {"content_encoder": audio_calls, "generator": generator_calls, "rmvpe": audio_calls, "fcpe": tone_calls}


@torch.no_grad()
def check_bundle_files(folder, models: dict, enc_module, gen_module, formats, rmvpe_module=None, fcpe_module=None,
                       stages=("content_encoder", "generator", "rmvpe", "fcpe")) -> dict:
    """Run every exported file against its eager module; returns ``{stage: {format: worst rel L2}}``.

    ``stages`` limits the check (a float16/bfloat16 bundle gates only its float32 RMVPE and FCPE).

    Raises
    ------
    ExportCheckError
        A file above its gate (naming the stage, the runtime, the call and the figure).
    """
    calls = _calls(gen_module)
    modules = {"content_encoder": (enc_module, content.INPUT_NAMES),
               "generator": (gen_module, gen_module.input_names), "rmvpe": (rmvpe_module, rmvpe_export.INPUT_NAMES),
               "fcpe": (fcpe_module, fcpe_export.INPUT_NAMES)}
    figures: dict[str, dict[str, float]] = {}
    for fmt in formats:
        for stage in stages:
            module, names = modules[stage]
            if module is None:
                continue
            run = runner(fmt, folder / models[stage]["files"][fmt], names)
            worst = 0.0
            for call, inputs in calls[stage]:
                err = rel_l2(run(*inputs).numpy(), module(*inputs).numpy())
                _gate(stage, fmt, call, err)
                worst = max(worst, err)
            figures.setdefault(stage, {})[fmt] = worst
    return figures


def _seeded_noise(inputs: tuple, gen_module, seed: int) -> tuple:
    """Replace the zero noise inputs by normal draws (the seeded mode exercises the noise paths)."""
    rng = torch.Generator().manual_seed(seed)
    n_noise = 2 if gen_module.if_f0 else 1
    noise = tuple(torch.randn(x.shape, generator=rng) for x in inputs[-n_noise:])
    return (*inputs[:-n_noise], *noise)


def _gate(stage: str, fmt: str, call: str, err: float) -> None:
    if not err <= GATES[stage]:
        raise ExportCheckError(f"exported {stage} ({fmt}) misses the parity gate at {call}: relative L2 "
                               f"{err:.3g} against eager rvc_lab > {GATES[stage]:g}; no bundle written")


@torch.no_grad()
def measure_bundle_files(folder, models: dict, enc_ref, gen_ref, formats, sample_rate: int) -> dict:
    """Fidelity of float16/bfloat16 files against eager float32 rvc_lab (measured, not gated).

    Parameters
    ----------
    folder : Path
        The bundle folder being written.
    models : dict
        Manifest model entries of ``content_encoder`` and ``generator`` (their ``inputs`` name the
        dtypes the files take; a format missing from ``files`` is reported unsupported).
    enc_ref, gen_ref : nn.Module
        The float32 eager modules the files were cast from.
    sample_rate : int
        The voice's rate (Hz), for the MCD of the generator's output.

    Returns
    -------
    dict
        ``{stage: {format: figures}}``; figures ``{"supported": True, ...}`` with the worst over
        the calls of :func:`check_bundle_files` (content encoder: ``feature_cosine`` (min),
        ``feature_rel_l2``; generator: ``output_snr_db`` (min), ``output_mcd_db``,
        ``output_rel_l2``), or ``{"supported": False, "reason": ...}`` where the runtime has no
        kernels for the precision.
    """
    calls = _calls(gen_ref)
    refs = {"content_encoder": (enc_ref, content.INPUT_NAMES), "generator": (gen_ref, gen_ref.input_names)}
    out: dict[str, dict[str, dict]] = {}
    for stage, (module, names) in refs.items():
        entry = models[stage]
        for fmt in formats:
            if fmt not in entry["files"]:
                out.setdefault(stage, {})[fmt] = entry.get("fidelity", {}).get(fmt) or \
                    {"supported": False, "reason": "not exported"}
                continue
            pairs = _run_pairs(fmt, folder / entry["files"][fmt], names, entry["inputs"], module, calls[stage])
            out.setdefault(stage, {})[fmt] = (_figures(stage, pairs, sample_rate) if isinstance(pairs, list)
                                              else {"supported": False, "reason": pairs})
    return out


def _run_pairs(fmt: str, path, names, spec_inputs, module, calls) -> list | str:
    """[(exported output, eager float32 output) float64 arrays] per call, or the runtime's reason it cannot run."""
    try:
        run = runner(fmt, path, names)
        got = [run(*cast_to_spec(inputs, spec_inputs)) for _, inputs in calls]
    except Exception as e:  # noqa: BLE001 - a runtime without kernels: its own error, whatever its type
        if fmt != "onnx":
            raise  # libtorch runs every precision on the CPU: anything else is a bug, not a row
        # the temporary folder's path says nothing to a host reading the manifest
        message = str(e).replace(f"{Path(path).parent}{os.sep}", "").strip().splitlines()[0]
        return f"onnxruntime {type(e).__name__}: {message[:300]}"
    return [(g.to(torch.float64).numpy(), module(*inputs).to(torch.float64).numpy())
            for g, (_, inputs) in zip(got, calls)]


def _figures(stage: str, pairs: list, sample_rate: int) -> dict:
    if stage == "content_encoder":
        return {"supported": True, "feature_cosine": min(mean_frame_cosine(a, e) for a, e in pairs),
                "feature_rel_l2": max(rel_l2(a, e) for a, e in pairs)}
    return {"supported": True, "output_snr_db": min(snr_db(a, e) for a, e in pairs),
            "output_mcd_db": max(mcd(a.ravel(), e.ravel(), sample_rate) for a, e in pairs),
            "output_rel_l2": max(rel_l2(a, e) for a, e in pairs)}
