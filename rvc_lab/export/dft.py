"""The STFT as a strided convolution with a windowed DFT basis: what the ONNX graphs use.

torch.onnx's TorchScript-based exporter has no complex tensors, so the RMVPE and FCPE front ends
write their STFT as this convolution in the ONNX graph: the same sums as ``torch.stft`` with a
periodic Hann window, float32 rounding apart.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def hann_dft_basis(n_fft: int) -> torch.Tensor:
    """float32 [2 * (n_fft // 2 + 1), 1, n_fft]: the real then the imaginary rows of a Hann-windowed DFT."""
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    window = torch.hann_window(n_fft, dtype=torch.float64)
    angle = 2 * math.pi * k * n / n_fft
    return torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window]).float().unsqueeze(1)


def conv_power_spectrum(padded: torch.Tensor, basis: torch.Tensor, hop: int) -> torch.Tensor:
    """``|STFT|^2`` [B, n_fft // 2 + 1, frames] of already padded audio [B, L] (frames not centred)."""
    spec = F.conv1d(padded.unsqueeze(1), basis, stride=hop)  # [B, 2 * bins, frames]
    bins = basis.shape[0] // 2
    re, im = spec[:, :bins], spec[:, bins:]
    return re.pow(2) + im.pow(2)
