"""``fcpe``: FCPE through torchfcpe's bundled model, as upstream's ``FCPEInfer`` on a CPU.

``spawn_bundled_infer_model(device).infer(x[None], sr=16000, decoder_mode="local_argmax",
threshold=0.006)``: ``N//160 + 1`` frames, frame ``i`` centred on sample ``160*i``; frames whose
peak latent is <= 0.006 come out as exactly 0 Hz (unvoiced).  The output is float32, and upstream
keeps it float32 through gap filling, key shift and the coarse mapping; so do we.
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


class FcpePitch(WholeSignalPitch):
    name = "fcpe"

    def __init__(self, device: Union[str, torch.device] = "cpu") -> None:
        self.device = device
        self._model = None

    @property
    def model(self):
        """torchfcpe's bundled inference model, loaded on first use (imports torchaudio)."""
        if self._model is None:
            from torchfcpe import spawn_bundled_infer_model

            # torchfcpe reports its set-up with print(); route that to our log instead of stdout.
            chatter = io.StringIO()
            with contextlib.redirect_stdout(chatter):
                self._model = spawn_bundled_infer_model(str(self.device))
            log.debug("torchfcpe bundled model loaded: %s", " | ".join(chatter.getvalue().split("\n")).strip(" |"))
        return self._model

    @torch.no_grad()
    def _f0(self, x16k: AudioLike) -> np.ndarray:
        audio = as_tensor_audio(x16k).unsqueeze(0)
        f0 = self.model.infer(audio, sr=SAMPLE_RATE, decoder_mode=DECODER_MODE, threshold=VOICING_THRESHOLD)
        return f0.reshape(-1).detach().cpu().numpy()
