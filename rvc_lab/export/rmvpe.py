"""RMVPE for export: 16 kHz audio -> pitch salience, mel front end inside the graph.

Input ``audio`` [1, N] float32 at 16 kHz (N >= 513); output ``salience`` [1, N // 160 + 1, 360]
float32 in (0, 1), frame i centred on sample 160 i.  The host decodes it as
:func:`rvc_lab.models.rmvpe.salience_to_hz` does (docs/bundle.md §8): per frame the salience-weighted
mean of the cents of bins peak-4..peak+4 (bin b = 20 b + 1997.379 cents), f0 = 10 * 2^(cents/1200),
unvoiced where the peak is <= 0.03 (upstream's threshold).

TorchScript keeps ``torch.stft``.  For ONNX the STFT is written as a convolution with a windowed
DFT basis (ONNX's exporter has no complex tensors): the same sums, float32 rounding apart (checked
by the self-check).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rvc_lab.export.dft import conv_power_spectrum, hann_dft_basis
from rvc_lab.models.rmvpe import FRAME_MULTIPLE, HOP_LENGTH, LOG_FLOOR, N_BINS, N_FFT, RMVPE

INPUT_NAMES = ["audio"]
OUTPUT_NAMES = ["salience"]
DYNAMIC_AXES = {"audio": {1: "N"}, "salience": {1: "frames"}}


class RMVPEExport(nn.Module):
    """Front end + network of an :class:`RMVPE`, ``[1, N] -> [1, N // 160 + 1, 360]``."""

    def __init__(self, rmvpe: RMVPE):
        super().__init__()
        self.net = rmvpe.net
        self.front_end = rmvpe.front_end  # torch.stft: kept in TorchScript (exact, and the FFT is faster)
        self.register_buffer("dft", hann_dft_basis(N_FFT))  # [2 * 513, 1, 1024]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        mel = self._dft_mel(audio) if torch.onnx.is_in_onnx_export() else self.front_end(audio)
        frames = mel.shape[-1]
        pad = (FRAME_MULTIPLE - frames % FRAME_MULTIPLE) % FRAME_MULTIPLE
        mel = F.pad(mel, (0, pad))
        return self.net(mel)[:, :frames]

    def _dft_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """The log-mel of :class:`LogMelFrontEnd` with the STFT as a convolution (ONNX has no complex)."""
        x = F.pad(audio.unsqueeze(1), (N_FFT // 2, N_FFT // 2), mode="reflect").squeeze(1)  # centred frames
        magnitude = torch.sqrt(conv_power_spectrum(x, self.dft, HOP_LENGTH))
        return torch.log(torch.clamp(torch.matmul(self.front_end.mel_basis, magnitude), min=LOG_FLOOR))


def example_audio(n: int = 8000, seed: int = 0) -> tuple[torch.Tensor]:
    return (0.3 * torch.randn(1, n, generator=torch.Generator().manual_seed(seed)),)


def io_spec() -> dict:
    return {"inputs": [{"name": "audio", "dtype": "float32", "shape": [1, "N"]}],
            "outputs": [{"name": "salience", "dtype": "float32", "shape": [1, "floor(N / 160) + 1", N_BINS]}],
            "decode": {"threshold": 0.03, "local_radius": 4, "cents_of_bin0": 1997.3794084376191,
                       "cents_per_bin": 20.0, "hz": "10 * 2 ** (cents / 1200)"}}
