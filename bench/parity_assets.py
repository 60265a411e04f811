"""Where the benchmarks find the parity assets: the seeded full-size weights upstream's goldens were
made with, written by ``../shared/parity/make_assets.py`` into ``.cache/parity-assets`` (the parity
tests generate them on their first run)."""
from __future__ import annotations

from pathlib import Path

#: ``.cache/parity-assets``: ``PARITY_ASSETS.json``, ``audio/`` and ``assets/`` in upstream's layout
ROOT = Path(__file__).resolve().parents[1] / ".cache" / "parity-assets"
ASSETS = ROOT / "assets"
VOICE = ASSETS / "weights" / "rvcref_v2_40k_f0.pth"
INDEX = ASSETS / "indices" / "added_IVF15_Flat_nprobe_1_rvcref_v2_40k_f0_v2.index"
HUBERT_DIR = ASSETS / "hubert_base"
RMVPE = ASSETS / "rmvpe" / "rmvpe.pt"


def generated() -> bool:
    """True once the parity assets have been written."""
    return (ROOT / "PARITY_ASSETS.json").exists()


def model_paths() -> dict:
    """``ConverterModels.load`` keyword arguments for the parity voice, HuBERT, index and RMVPE."""
    return dict(model=VOICE, hubert=HUBERT_DIR, index=INDEX, rmvpe=RMVPE)
