"""Where the benchmarks find the parity assets: the seeded full-size weights upstream's goldens were
made with, written by ``../shared/parity/make_assets.py`` into ``.cache/parity-assets`` (the parity
tests generate them on their first run).  The layout is :mod:`rvc_lab.files.parity_assets`'."""
from __future__ import annotations

from pathlib import Path

from rvc_lab.files.parity_assets import ParityAssets

#: ``.cache/parity-assets`` of this checkout
PARITY = ParityAssets(Path(__file__).resolve().parents[1] / ".cache" / "parity-assets")
