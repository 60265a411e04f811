"""Content encoder for export: 16 kHz audio -> RVC content features, one version per file.

Input ``audio`` [1, N] float32 at 16 kHz (N >= 400); output ``features`` [1, T, C] float32 with
T = floor((N - 400) / 320) + 1, C = 256 (v1: layer 9 + final_proj) or 768 (v2: layer 12).
"""
from __future__ import annotations

import torch
from torch import nn

from rvc_lab.models.hubert import HubertBase

FEATURE_DIM = {"v1": 256, "v2": 768}
INPUT_NAMES = ["audio"]
OUTPUT_NAMES = ["features"]
DYNAMIC_AXES = {"audio": {1: "N"}, "features": {1: "T"}}


class ContentEncoderExport(nn.Module):
    """``HubertBase.extract_features(audio, version)`` as a one-input module (weights shared)."""

    def __init__(self, encoder: HubertBase, version: str):
        super().__init__()
        if version not in FEATURE_DIM:
            raise ValueError(f"unknown RVC feature version {version!r}")
        self.encoder = encoder
        self.version = version

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.encoder.extract_features(audio, self.version)


def example_audio(n: int = 16000, seed: int = 0) -> tuple[torch.Tensor]:
    """A [1, n] 16 kHz example input (noise at -10 dBFS)."""
    return (0.3 * torch.randn(1, n, generator=torch.Generator().manual_seed(seed)),)


def io_spec(version: str, dtype: str = "float32") -> dict:
    """Manifest entry (inputs/outputs) of the content encoder; ``dtype`` of a float16/bfloat16 bundle."""
    return {"inputs": [{"name": "audio", "dtype": dtype, "shape": [1, "N"]}],
            "outputs": [{"name": "features", "dtype": dtype,
                         "shape": [1, "floor((N - 400) / 320) + 1", FEATURE_DIM[version]]}]}
