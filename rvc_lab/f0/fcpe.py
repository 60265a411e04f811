"""``fcpe``: FCPE through torchfcpe's bundled model, as upstream's ``FCPEInfer`` on a CPU.

``spawn_bundled_infer_model(device).infer(x[None], sr=16000, decoder_mode="local_argmax",
threshold=0.006)``: ``N//160 + 1`` frames, frame ``i`` centred on sample ``160*i``; frames whose
peak latent is <= 0.006 come out as exactly 0 Hz (unvoiced).  The output is float32, and upstream
keeps it float32 through gap filling, key shift and the coarse mapping; so do we.

:func:`latent_to_hz` is torchfcpe's ``local_argmax`` decode written out, for the exported FCPE of
a bundle (:mod:`rvc_lab.export.fcpe`), whose graph ends at the latent.
"""
from __future__ import annotations

import contextlib
import io
import logging
from typing import Union

import numpy as np
import torch

from rvc_lab.f0.base import SAMPLE_RATE, AudioLike, WholeSignalPitch, as_tensor_audio

log = logging.getLogger(__name__)

DECODER_MODE = "local_argmax"
VOICING_THRESHOLD = 0.006
N_BINS = 360
LOCAL_RADIUS = 4


def load_bundled_fcpe(device: Union[str, torch.device] = "cpu"):
    """torchfcpe's bundled inference model (``InferCFNaiveMelPE``, eval mode; imports torchaudio)."""
    from torchfcpe import spawn_bundled_infer_model

    # torchfcpe reports its set-up with print(); route that to our log instead of stdout.
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        model = spawn_bundled_infer_model(str(device))
    log.debug("torchfcpe bundled model loaded: %s", " | ".join(chatter.getvalue().split("\n")).strip(" |"))
    return model


@torch.no_grad()
def latent_to_hz(latent: torch.Tensor, cents_table, threshold: float = VOICING_THRESHOLD) -> torch.Tensor:
    """torchfcpe's ``local_argmax`` decode: latent float32 [frames, 360] -> f0 float32 [frames] in Hz.

    ``cents_table``: the cents of the 360 bins, float32 (the model's ``cent_table`` buffer; a
    bundle's manifest lists it).  Per frame: the peak bin p; the bins p-4..p+4 clamped into 0..359
    (an edge bin repeats, it is not dropped); cents = sum(latent * cents) / sum(latent) over those
    9; f0 = 10 * 2^(cents/1200); 0 (unvoiced) where the peak latent is <= ``threshold``.  The same
    float32 ops as torchfcpe's.
    """
    y = latent.to(torch.float32)
    table = torch.as_tensor(cents_table, dtype=torch.float32).reshape(-1)
    confident, peak = torch.max(y, dim=-1, keepdim=True)
    window = (torch.arange(2 * LOCAL_RADIUS + 1) + (peak - LOCAL_RADIUS)).clamp(0, N_BINS - 1)
    cents_local = torch.gather(table.expand(y.shape[0], -1), -1, window)
    y_local = torch.gather(y, -1, window)
    cents = torch.sum(cents_local * y_local, dim=-1) / torch.sum(y_local, dim=-1)
    f0 = 10.0 * 2 ** (cents / 1200.0)
    return torch.where(confident[:, 0] <= threshold, torch.zeros_like(f0), f0)


class FcpePitch(WholeSignalPitch):
    name = "fcpe"

    def __init__(self, device: Union[str, torch.device] = "cpu", model=None) -> None:
        # ``model``: an already built estimator answering torchfcpe's ``infer(wav, sr=, decoder_mode=,
        # threshold=)``, e.g. an exported FCPE (rvc_lab.export.backends.ExportedFCPE); then torchfcpe is not loaded
        self.device = device
        self._model = model

    @property
    def model(self):
        """torchfcpe's bundled inference model, loaded on first use (imports torchaudio)."""
        if self._model is None:
            self._model = load_bundled_fcpe(self.device)
        return self._model

    @torch.no_grad()
    def _f0(self, x16k: AudioLike) -> np.ndarray:
        audio = as_tensor_audio(x16k).unsqueeze(0)
        f0 = self.model.infer(audio, sr=SAMPLE_RATE, decoder_mode=DECODER_MODE, threshold=VOICING_THRESHOLD)
        return f0.reshape(-1).detach().cpu().numpy()
