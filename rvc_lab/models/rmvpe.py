"""RMVPE pitch network and its log-mel front end (16 kHz audio, 10 ms frames).

RMVPE ("robust model for vocal pitch estimation") maps a 128-band log-mel spectrogram to a
360-bin pitch salience per frame; bin ``i`` stands for ``20*i + 1997.38`` cents above 10 Hz, so
the bins span about 31.7 Hz to 2005 Hz in 20-cent steps.

Layout of the network (the configuration RVC ships, ``E2E(4, 1, (2, 2))`` upstream):

* a U-Net over the (time x mel) plane: input BatchNorm, 5 encoder stages (16, 32, 64, 128, 256
  channels, 4 residual conv units each, 2x2 average pooling), 4 bottleneck stages at 512
  channels, 5 decoder stages (transposed conv x2 upsampling, skip concat, 4 residual units);
* a 3x3 conv to 3 channels, flattened with the 128 mel bands into 384 features per frame;
* a bidirectional GRU (256 per direction), a linear layer to 360 bins and a sigmoid.

Module attribute names equal upstream's, because they are the key names of ``rmvpe.pt`` files
(``unet.encoder.layers.0.conv.0.conv.1.weight`` and so on): they are a file format here.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
HOP_LENGTH = 160  # 10 ms at 16 kHz
N_FFT = 1024
N_MELS = 128
MEL_FMIN = 30.0
MEL_FMAX = 8000.0
LOG_FLOOR = 1e-5
N_BINS = 360
CENTS_PER_BIN = 20.0
CENTS_OF_BIN0 = 1997.3794084376191  # cents above 10 Hz of bin 0 (about 31.7 Hz)
# The U-Net halves the time axis five times; frames are zero-padded to this multiple.
FRAME_MULTIPLE = 32
# Half width of the window of bins the decoder averages around the peak bin.
LOCAL_RADIUS = 4

AudioLike = Union[np.ndarray, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Front end
# ----------------------------------------------------------------------------------------------
class LogMelFrontEnd(nn.Module):
    """Log-mel spectrogram exactly as RMVPE was trained on.

    ``torch.stft`` (n_fft = window = 1024, hop 160, periodic Hann, centred with reflect padding),
    magnitude ``sqrt(re^2 + im^2)``, librosa's mel filterbank (128 bands, 30-8000 Hz, HTK mel
    scale, Slaney area normalisation), natural log of the values clamped at 1e-5.
    """

    def __init__(self) -> None:
        super().__init__()
        from librosa.filters import mel as librosa_mel

        basis = librosa_mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=MEL_FMIN, fmax=MEL_FMAX, htk=True)
        # Not persistent: derived from constants, never part of a model file.
        self.register_buffer("mel_basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """``audio`` [B, N] float32 at 16 kHz -> log-mel [B, 128, N//160 + 1]."""
        spec = torch.stft(
            audio,
            n_fft=N_FFT,
            hop_length=HOP_LENGTH,
            win_length=N_FFT,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
        return torch.log(torch.clamp(torch.matmul(self.mel_basis, magnitude), min=LOG_FLOOR))


# ----------------------------------------------------------------------------------------------
# Network
# ----------------------------------------------------------------------------------------------
def _bn(channels: int) -> nn.BatchNorm2d:
    # momentum only matters in training; kept at the value the weights were trained with.
    return nn.BatchNorm2d(channels, momentum=0.01)


class Conv3x3(nn.Conv2d):
    """3x3 convolution, padding 1, no bias: ``[B, C_in, T, F]`` -> ``[B, C_out, T, F]``.

    When the time axis holds a single frame (the deepest U-Net level of a 32-frame window: the
    streaming case), the top and bottom kernel rows only ever meet zero padding, so the output is
    computed from the middle row alone: the same non-zero terms, a third of the weights read.
    At 512 channels these convolutions are bound by reading weights (9.4 MB each, 32 of them
    per call), so this cuts their time about threefold.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self._middle_row: Optional[Tuple[tuple, torch.Tensor]] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] != 1:
            return super().forward(x)
        w = self.weight
        key = (w.data_ptr(), w._version)  # rebuilt when the weights are replaced or changed in place
        if self._middle_row is None or self._middle_row[0] != key:
            self._middle_row = (key, w.detach()[:, :, 1:2, :].contiguous())
        return F.conv2d(x, self._middle_row[1], padding=(0, 1))


class ResidualConvUnit(nn.Module):
    """Two 3x3 conv + BN + ReLU layers with a residual path (1x1 conv when widths differ)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            Conv3x3(in_channels, out_channels),
            _bn(out_channels),
            nn.ReLU(),
            Conv3x3(out_channels, out_channels),
            _bn(out_channels),
            nn.ReLU(),
        )
        self.shortcut: Optional[nn.Conv2d] = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        return self.conv(x) + residual


class ResidualStack(nn.Module):
    """``n_units`` residual conv units; optionally also returns a 2x2 average-pooled copy."""

    def __init__(self, in_channels: int, out_channels: int, n_units: int, pool: Optional[Tuple[int, int]]) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * n_units
        self.conv = nn.ModuleList(ResidualConvUnit(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.pool = nn.AvgPool2d(kernel_size=pool) if pool is not None else None

    def forward(self, x: torch.Tensor):
        for unit in self.conv:
            x = unit(x)
        if self.pool is None:
            return x
        return x, self.pool(x)


class UNetEncoder(nn.Module):
    """Input BatchNorm, then stages that each return (skip tensor, pooled tensor)."""

    def __init__(self, n_stages: int, n_units: int, pool: Tuple[int, int], first_width: int = 16) -> None:
        super().__init__()
        self.bn = _bn(1)
        widths = [1] + [first_width * 2**i for i in range(n_stages)]
        self.layers = nn.ModuleList(
            ResidualStack(a, b, n_units, pool) for a, b in zip(widths[:-1], widths[1:])
        )
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        skips = []
        x = self.bn(x)
        for stage in self.layers:
            skip, x = stage(x)
            skips.append(skip)
        return x, skips


class UNetBottleneck(nn.Module):
    """Stages without pooling; the first doubles the width."""

    def __init__(self, in_channels: int, n_stages: int, n_units: int) -> None:
        super().__init__()
        width = 2 * in_channels
        self.layers = nn.ModuleList(
            ResidualStack(in_channels if i == 0 else width, width, n_units, pool=None) for i in range(n_stages)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.layers:
            x = stage(x)
        return x


class UpStage(nn.Module):
    """Transposed 3x3 conv (x2 upsampling in both axes) + BN + ReLU, skip concat, residual units."""

    def __init__(self, in_channels: int, out_channels: int, n_units: int, stride: Tuple[int, int]) -> None:
        super().__init__()
        # output_padding makes the upsampled size exactly twice the input size.
        output_padding = (0, 1) if tuple(stride) == (1, 2) else (1, 1)
        self.conv1 = nn.Sequential(
            nn.ConvTranspose2d(
                in_channels,
                out_channels,
                kernel_size=3,
                stride=stride,
                padding=1,
                output_padding=output_padding,
                bias=False,
            ),
            _bn(out_channels),
            nn.ReLU(),
        )
        widths = [2 * out_channels] + [out_channels] * n_units
        self.conv2 = nn.ModuleList(ResidualConvUnit(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat((self.conv1(x), skip), dim=1)
        for unit in self.conv2:
            x = unit(x)
        return x


class UNetDecoder(nn.Module):
    def __init__(self, in_channels: int, n_stages: int, n_units: int, stride: Tuple[int, int]) -> None:
        super().__init__()
        widths = [in_channels // 2**i for i in range(n_stages + 1)]
        self.layers = nn.ModuleList(
            UpStage(a, b, n_units, stride) for a, b in zip(widths[:-1], widths[1:])
        )

    def forward(self, x: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        for stage, skip in zip(self.layers, reversed(skips)):
            x = stage(x, skip)
        return x


class SpectroUNet(nn.Module):
    def __init__(self, n_units: int, pool: Tuple[int, int], n_stages: int = 5, n_bottleneck: int = 4) -> None:
        super().__init__()
        self.encoder = UNetEncoder(n_stages, n_units, pool)
        self.intermediate = UNetBottleneck(self.encoder.out_channels, n_bottleneck, n_units)
        self.decoder = UNetDecoder(2 * self.encoder.out_channels, n_stages, n_units, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, skips = self.encoder(x)
        return self.decoder(self.intermediate(x), skips)


class BidirectionalGRU(nn.Module):
    """Batch-first bidirectional GRU returning only the output sequence."""

    def __init__(self, n_in: int, n_hidden: int, n_layers: int) -> None:
        super().__init__()
        self.gru = nn.GRU(n_in, n_hidden, num_layers=n_layers, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


class RMVPENet(nn.Module):
    """Log-mel [B, 128, T] -> salience [B, T, 360] in (0, 1); T must be a multiple of 32.

    Parameters
    ----------
    n_units : int
        Residual conv units per U-Net stage (4 in RVC's model).
    n_gru : int
        GRU layers (1 in RVC's model).
    pool : (int, int)
        Pooling / upsampling factor per stage over (time, mel) ((2, 2) in RVC's model).
    """

    def __init__(self, n_units: int = 4, n_gru: int = 1, pool: Tuple[int, int] = (2, 2)) -> None:
        super().__init__()
        if n_gru < 1:
            raise ValueError("RMVPENet needs at least one GRU layer (RVC's model has one)")
        self.unet = SpectroUNet(n_units, pool)
        self.cnn = nn.Conv2d(16, 3, kernel_size=3, padding=1)
        self.fc = nn.Sequential(
            BidirectionalGRU(3 * N_MELS, 256, n_gru),
            nn.Linear(512, N_BINS),
            nn.Dropout(0.25),
            nn.Sigmoid(),
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.transpose(-1, -2).unsqueeze(1)  # [B, 1, T, 128]: an image with time as height
        x = self.cnn(self.unet(x))  # [B, 3, T, 128]
        x = x.transpose(1, 2).flatten(-2)  # [B, T, 384]
        return self.fc(x)


# ----------------------------------------------------------------------------------------------
# Decoding salience to Hz
# ----------------------------------------------------------------------------------------------
_CENTS_TABLE = np.pad(CENTS_PER_BIN * np.arange(N_BINS) + CENTS_OF_BIN0, (LOCAL_RADIUS, LOCAL_RADIUS))


def salience_to_hz(salience: np.ndarray, threshold: float = 0.03) -> np.ndarray:
    """Local weighted average of cents around each frame's peak bin, in Hz.

    Parameters
    ----------
    salience : np.ndarray, float32, [frames, 360]
        Network output.
    threshold : float
        Frames whose peak salience is ``<= threshold`` are unvoiced.

    Returns
    -------
    np.ndarray, float64, [frames]
        Hz per 10 ms frame, 0 = unvoiced.  Each voiced frame averages the cents of the 9 bins
        ``peak-4 .. peak+4`` weighted by their salience (bins outside 0..359 count as salience 0),
        then ``f0 = 10 * 2**(cents/1200)``.
    """
    salience = np.asarray(salience)
    peak = np.argmax(salience, axis=1)
    padded = np.pad(salience, ((0, 0), (LOCAL_RADIUS, LOCAL_RADIUS)))
    # In padded coordinates the window of bin `peak` starts at `peak` itself.
    window = peak[:, None] + np.arange(2 * LOCAL_RADIUS + 1)[None, :]
    weights = np.take_along_axis(padded, window, axis=1)
    cents = _CENTS_TABLE[window]
    # Same dtypes and reduction shapes as upstream (float32 weights, float64 cents) so the
    # rounding agrees bit for bit.
    mean_cents = np.sum(weights * cents, axis=1) / np.sum(weights, axis=1)
    mean_cents[np.max(padded, axis=1) <= threshold] = 0
    f0 = 10 * 2 ** (mean_cents / 1200)
    f0[f0 == 10] = 0
    return f0


# ----------------------------------------------------------------------------------------------
# Inference wrapper
# ----------------------------------------------------------------------------------------------
class RMVPE:
    """RMVPE pitch estimator: network + front end + decoder, fp32, eval mode.

    Build it with :func:`rvc_lab.files.rmvpe.load_rmvpe` (from a file) or directly from an
    :class:`RMVPENet`.  All methods take 16 kHz mono audio as a 1-D numpy array or tensor (any
    float dtype; computed in float32) and work on 10 ms frames: ``N`` samples give ``N//160 + 1``
    frames, frame ``i`` centred on sample ``160*i``.
    """

    def __init__(self, net: RMVPENet, device: Union[str, torch.device] = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.float().eval().to(self.device)
        self.front_end = LogMelFrontEnd().to(self.device)

    def _as_batch(self, x16k: AudioLike) -> torch.Tensor:
        audio = x16k if torch.is_tensor(x16k) else torch.from_numpy(np.ascontiguousarray(x16k))
        audio = audio.float().to(self.device)
        if audio.dim() != 1:
            raise ValueError(f"expected 1-D mono audio, got shape {tuple(audio.shape)}")
        return audio.unsqueeze(0)

    @torch.no_grad()
    def mel(self, x16k: AudioLike) -> torch.Tensor:
        """Log-mel spectrogram, float32 [128, N//160 + 1]."""
        return self.front_end(self._as_batch(x16k))[0]

    @torch.no_grad()
    def salience_from_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Salience [frames, 360] of a log-mel [128, frames].

        Frames are zero-padded on the right to a multiple of 32 for the U-Net and the output is
        cut back, so the padding influences the last frames through the GRU (as upstream).
        """
        n_frames = mel.shape[-1]
        n_pad = -n_frames % FRAME_MULTIPLE
        batch = mel.float().to(self.device).unsqueeze(0)
        if n_pad:
            batch = F.pad(batch, (0, n_pad))
        return self.net(batch)[0, :n_frames]

    def salience(self, x16k: AudioLike) -> torch.Tensor:
        """Pitch salience, float32 [N//160 + 1, 360], values in (0, 1)."""
        return self.salience_from_mel(self.mel(x16k))

    def infer_from_audio(self, x16k: AudioLike, threshold: float = 0.03) -> np.ndarray:
        """F0 in Hz, float64 [N//160 + 1], 0 = unvoiced (peak salience <= ``threshold``)."""
        salience = self.salience(x16k).cpu().numpy()
        return salience_to_hz(salience, threshold)
