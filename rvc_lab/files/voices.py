"""The files one conversion needs (:class:`VoiceFiles`), and the seeded demo voices as such files.

Shared by the report, the notebook widgets and the sweeps; no model is loaded until
:meth:`VoiceFiles.load`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from rvc_lab.convert.models import ConverterModels
from rvc_lab.errors import SettingsError
from rvc_lab.files.synthetic import DEMO_VOICES, cached_demo_assets

DEMO_SEED = 0
DEMO_VOICE = "demo_v2_40k_f0"


@dataclass
class VoiceFiles:
    """The files one conversion needs.

    Attributes
    ----------
    name : str
        Label shown in reports and widgets.
    model, hubert : str
        Voice ``.pth`` and content encoder (fairseq ``hubert_base.pt`` or HF directory).
    index, rmvpe : str or None
    synthetic : bool
        Random weights (demo assets): timings and parity are real, the sound is not.
    """

    name: str
    model: str
    hubert: str
    index: str | None = None
    rmvpe: str | None = None
    synthetic: bool = False

    def load(self, backend: str = "torch"):
        """:class:`rvc_lab.convert.models.ConverterModels` for these files (``backend``: see ``ConverterModels.load``)."""
        return ConverterModels.load(self.model, hubert=self.hubert, index=self.index, rmvpe=self.rmvpe, backend=backend)


def demo_voice_files(voice: str = DEMO_VOICE, seed: int = DEMO_SEED, cache_dir: str | os.PathLike | None = None,
                     with_index: bool = True) -> VoiceFiles:
    """Demo assets (written once into ``<cache>/demo-assets-seed<seed>``) as :class:`VoiceFiles`."""
    paths = cached_demo_assets(seed, cache_dir)
    if voice not in paths:
        names = [k for k in paths if k.startswith("demo_") and not k.endswith("_index")]
        raise SettingsError(f"unknown demo voice {voice!r}; choose one of {', '.join(names)}")
    return VoiceFiles(name=f"{voice} (random weights, seed {seed})", model=str(paths[voice]),
                      hubert=str(paths["hubert"]), index=str(paths[f"{voice}_index"]) if with_index else None,
                      rmvpe=str(paths["rmvpe"]), synthetic=True)


def demo_voice_names() -> list[str]:
    """Names of the demo voices (``demo_v2_40k_f0``, ...)."""
    return [v.name for v in DEMO_VOICES]


def looks_synthetic(models) -> bool:
    """True when the voice says it has random weights (rvc_lab's demo voices write that in ``info``)."""
    return "random weights" in str(getattr(models.voice, "info", "")).lower()
