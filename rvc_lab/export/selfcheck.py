"""Parity self-check of freshly exported files against eager rvc_lab, run before a bundle is kept.

Each exported file is loaded back with its runtime and run at lengths and windows other than
the trace's example (so a size frozen by tracing shows up), against the eager module it came
from.  Gates are upstream's parity targets: content features <= 1e-5 and generator audio <= 1e-4
relative L2 (the same figures the test suite holds eager rvc_lab to against upstream).
"""
from __future__ import annotations

import torch

from rvc_lab.errors import RVCLabError
from rvc_lab.export import content, generator
from rvc_lab.export import rmvpe as rmvpe_export
from rvc_lab.export.backends import runner
from rvc_lab.metrics.spectral import rel_l2

GATES = {"content_encoder": 1e-5, "generator": 1e-4, "rmvpe": 1e-4}
#: (frames, skip_head, return_length, return_length2): a whole call, a streaming window, a formant stretch
GENERATOR_WINDOWS = ((37, 0, 37, 37), (90, 40, 30, 30), (64, 10, 40, 46))
AUDIO_LENGTHS = (7040, 24000)


class ExportCheckError(RVCLabError):
    """An exported file computes something else than the eager model (stage, runtime, figure)."""


@torch.no_grad()
def check_bundle_files(folder, models: dict, enc_module, gen_module, formats, rmvpe_module=None) -> dict:
    """Run every exported file against its eager module; returns ``{stage: {format: worst rel L2}}``.

    Raises
    ------
    ExportCheckError
        A file above its gate (naming the stage, the runtime, the call and the figure).
    """
    audio_calls = [(f"{n} samples", content.example_audio(n, seed=n)) for n in AUDIO_LENGTHS]
    generator_calls = [
        (f"T={frames} window=({skip}, {ret}, {ret2})",
         _seeded_noise(generator.example_inputs(gen_module, frames, skip, ret, ret2, seed=frames), gen_module, frames))
        for frames, skip, ret, ret2 in GENERATOR_WINDOWS
    ]  # fmt: skip
    stages = [("content_encoder", enc_module, content.INPUT_NAMES, audio_calls),
              ("generator", gen_module, gen_module.input_names, generator_calls)]
    if rmvpe_module is not None:
        stages.append(("rmvpe", rmvpe_module, rmvpe_export.INPUT_NAMES, audio_calls))
    figures: dict[str, dict[str, float]] = {}
    for fmt in formats:
        for stage, module, names, calls in stages:
            run = runner(fmt, folder / models[stage]["files"][fmt], names)
            worst = 0.0
            for call, inputs in calls:
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
