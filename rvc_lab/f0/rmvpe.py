"""``rmvpe``: the RMVPE network (a model file the user provides), upstream 2026 semantics.

Offline and streaming both call ``infer_from_audio(x, threshold=0.03)`` on the samples as given:
``N//160 + 1`` frames, frame ``i`` centred on sample ``160*i``, 0 = unvoiced.  (The streaming
path chooses its window length, ``5120*k - 160`` samples, so that the U-Net needs no padding.)
"""
from __future__ import annotations

import logging
import os
from typing import Union

import numpy as np
import torch

from rvc_lab.errors import InvalidAudioError
from rvc_lab.f0.base import AudioLike, WholeSignalPitch
from rvc_lab.files.rmvpe import load_rmvpe

log = logging.getLogger(__name__)

VOICING_THRESHOLD = 0.03
# The centred STFT reflect-pads 512 samples on each side, which needs more than 512 samples.
MIN_SAMPLES = 513


class RmvpePitch(WholeSignalPitch):
    name = "rmvpe"

    def __init__(self, model_path: Union[str, os.PathLike, None], device: Union[str, torch.device] = "cpu",
                 model=None) -> None:
        # ``model``: an already built estimator with ``infer_from_audio(x16k, threshold)``, e.g. an
        # exported RMVPE (rvc_lab.export.backends.ExportedRMVPE); then no file is loaded
        self.model_path = os.fspath(model_path) if model_path else None
        self.device = device
        self._model = model

    @property
    def model(self):
        """The :class:`~rvc_lab.models.rmvpe.RMVPE`, loaded (and validated) on first use."""
        if self._model is None:
            log.info("loading RMVPE model %s", self.model_path)
            self._model = load_rmvpe(self.model_path, device=self.device)
        return self._model

    def _f0(self, x16k: AudioLike) -> np.ndarray:
        if len(x16k) < MIN_SAMPLES:
            raise InvalidAudioError(
                f"rmvpe needs at least {MIN_SAMPLES} samples at 16 kHz (32 ms), got {len(x16k)}"
            )
        return self.model.infer_from_audio(x16k, threshold=VOICING_THRESHOLD)
