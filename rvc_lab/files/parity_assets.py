"""The layout of the seeded parity assets: the random-weight files upstream's goldens were made with.

``../shared/parity/make_assets.py --out ROOT`` writes them in upstream's own layout (the parity
tests do so on their first run, into ``.cache/parity-assets``)::

    ROOT/PARITY_ASSETS.json                     what was written and how it was verified
    ROOT/assets/weights/<voice>.pth             rvcref_v2_40k_f0, rvcref_v1_48k_f0, rvcref_v2_32k_nof0
    ROOT/assets/indices/<index of the voice>    added_IVF{n}_Flat_nprobe_1_<voice>_<version>.index
    ROOT/assets/hubert/hubert_base.pt           fairseq checkpoint
    ROOT/assets/hubert_base/                    the same weights as a transformers folder
    ROOT/assets/rmvpe/rmvpe.pt

The tests and the benchmarks find every file through :class:`ParityAssets`, so the names live here once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The parity voices (v2 40 kHz with F0, v1 48 kHz with F0, v2 32 kHz without F0)
VOICES = ("rvcref_v2_40k_f0", "rvcref_v1_48k_f0", "rvcref_v2_32k_nof0")
#: The index trained for each voice that has one (file name, as in ``assets/indices`` and ``../shared/parity/indices``)
INDEX_FILES = {
    "rvcref_v2_40k_f0": "added_IVF15_Flat_nprobe_1_rvcref_v2_40k_f0_v2.index",
    "rvcref_v1_48k_f0": "added_IVF20_Flat_nprobe_1_rvcref_v1_48k_f0_v1.index",
}
#: The voice most parity cases use
MAIN_VOICE = "rvcref_v2_40k_f0"


@dataclass(frozen=True)
class ParityAssets:
    """Paths inside a parity-assets folder ``root`` (see the module docstring for the layout)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def assets(self) -> Path:
        return self.root / "assets"

    @property
    def stamp(self) -> Path:
        """``PARITY_ASSETS.json``, written last by ``make_assets.py``."""
        return self.root / "PARITY_ASSETS.json"

    def generated(self) -> bool:
        """True once the assets have been written."""
        return self.stamp.exists()

    def voice(self, name: str = MAIN_VOICE) -> Path:
        """The voice checkpoint ``assets/weights/<name>.pth``."""
        if name not in VOICES:
            raise KeyError(f"no parity voice {name!r}; the voices are {', '.join(VOICES)}")
        return self.assets / "weights" / f"{name}.pth"

    def index(self, voice: str = MAIN_VOICE) -> Path:
        """The voice's trained index ``assets/indices/added_*.index``."""
        return self.assets / "indices" / INDEX_FILES[voice]

    @property
    def hubert_dir(self) -> Path:
        """HuBERT base as a transformers folder."""
        return self.assets / "hubert_base"

    @property
    def hubert_file(self) -> Path:
        """HuBERT base as fairseq's ``hubert_base.pt``."""
        return self.assets / "hubert" / "hubert_base.pt"

    @property
    def rmvpe(self) -> Path:
        return self.assets / "rmvpe" / "rmvpe.pt"

    def model_paths(self, voice: str = MAIN_VOICE) -> dict:
        """``ConverterModels.load`` keyword arguments: the voice, HuBERT (folder), its index and RMVPE."""
        paths = dict(model=self.voice(voice), hubert=self.hubert_dir, rmvpe=self.rmvpe)
        if voice in INDEX_FILES:
            paths["index"] = self.index(voice)
        return paths
