"""FCPE for export: 16 kHz audio -> torchfcpe's latent, mel front end inside the graph.

Input ``audio`` [1, N] float32 at 16 kHz (N >= 433); output ``salience`` [1, N // 160 + 1, 360]
float32 in (0, 1) (torchfcpe's "latent"), frame i centred on sample 160 i.  The host decodes it as
:func:`rvc_lab.f0.fcpe.latent_to_hz` does (docs/bundle.md §8): per frame the latent-weighted mean
of the cents of bins peak-4..peak+4 clamped into 0..359, f0 = 10 * 2^(cents/1200), unvoiced
where the peak is <= 0.006 (upstream's threshold).  The bins' cents are the model file's
``cent_table`` (listed in the manifest): within 0.001 cents of a linspace from 1200 log2(32.7 / 10)
to 1200 log2(1975.5 / 10), but not that linspace bit for bit.

The front end is torchfcpe's: audio reflect-padded by 432 samples each side, un-centred STFT
(n_fft = window = 1024, hop 160, periodic Hann), magnitude sqrt(re^2 + im^2 + 1e-9), its 128-band
mel basis (0-8000 Hz, Slaney), ln(max(., 1e-5)); the N // 160 frames this gives get the last one
repeated (torchfcpe's own rule for N // 160 + 1).  TorchScript keeps ``torch.stft``; for ONNX the
STFT is the convolution of :mod:`rvc_lab.export.dft` (ONNX's exporter has no complex tensors).
The decode stays out of the graph, as RMVPE's does: the gate checks the continuous latent, and a
host can move the threshold.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rvc_lab.export.dft import conv_power_spectrum, hann_dft_basis
from rvc_lab.f0.fcpe import LOCAL_RADIUS, N_BINS, VOICING_THRESHOLD

INPUT_NAMES = ["audio"]
OUTPUT_NAMES = ["salience"]
DYNAMIC_AXES = {"audio": {1: "N"}, "salience": {1: "frames"}}
N_FFT = 1024
HOP_LENGTH = 160
PAD = (N_FFT - HOP_LENGTH) // 2  # 432 samples each side, torchfcpe's (win - hop) // 2
MIN_SAMPLES = PAD + 1  # reflect padding needs more samples than it pads
MAGNITUDE_EPS = 1e-9
LOG_FLOOR = 1e-5


class FCPEExport(nn.Module):
    """Front end + network of torchfcpe's ``InferCFNaiveMelPE``, ``[1, N] -> [1, N // 160 + 1, 360]``."""

    def __init__(self, infer_model):
        super().__init__()
        mel = infer_model.wav2mel.mel_extractor
        if (mel.n_fft, mel.win_size, mel.hop_length, mel.target_sr) != (N_FFT, N_FFT, HOP_LENGTH, 16000):
            raise ValueError(f"not torchfcpe's bundled front end: n_fft {mel.n_fft}, window {mel.win_size}, "
                             f"hop {mel.hop_length}, sr {mel.target_sr}")
        self.net = infer_model.model
        self.cents_table = [float(c) for c in infer_model.model.cent_table]  # for the manifest, not the graph
        self.register_buffer("mel_basis", mel.mel_basis.detach().clone())  # [128, 513]
        self.register_buffer("window", torch.hann_window(N_FFT))  # torch.stft: kept in TorchScript
        self.register_buffer("dft", hann_dft_basis(N_FFT))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = F.pad(audio.unsqueeze(1), (PAD, PAD), mode="reflect").squeeze(1)
        if torch.onnx.is_in_onnx_export():
            power = conv_power_spectrum(x, self.dft, HOP_LENGTH)
        else:
            spec = torch.stft(x, N_FFT, hop_length=HOP_LENGTH, win_length=N_FFT, window=self.window,
                              center=False, return_complex=True)
            power = spec.real.pow(2) + spec.imag.pow(2)
        magnitude = torch.sqrt(power + MAGNITUDE_EPS)
        mel = torch.log(torch.clamp(torch.matmul(self.mel_basis, magnitude), min=LOG_FLOOR))  # [1, 128, N // 160]
        mel = torch.cat([mel, mel[:, :, -1:]], dim=2)  # N // 160 + 1 frames: the last repeated
        return self.net(mel.transpose(1, 2))


def example_audio(n: int = 8000, seed: int = 0) -> tuple[torch.Tensor]:
    return (0.3 * torch.randn(1, n, generator=torch.Generator().manual_seed(seed)),)


def io_spec(cents_table: list[float]) -> dict:
    return {"inputs": [{"name": "audio", "dtype": "float32", "shape": [1, "N"]}],
            "outputs": [{"name": "salience", "dtype": "float32", "shape": [1, "floor(N / 160) + 1", N_BINS]}],
            "min_samples": MIN_SAMPLES,
            "decode": {"threshold": VOICING_THRESHOLD, "local_radius": LOCAL_RADIUS, "edge": "clamp",
                       "cents_table": list(cents_table), "hz": "10 * 2 ** (cents / 1200)"}}
