"""The loaded model set a conversion needs: content encoder, voice generator, index, F0 estimators.

Loading is the slow part (HuBERT alone is 360 MB), so drivers share one :class:`ConverterModels`;
F0 estimators are created on first use and kept.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from rvc_lab.errors import SettingsError
from rvc_lab.f0 import F0Estimator
from rvc_lab.files.generator_weights import build_synthesizer
from rvc_lab.files.hubert import load_content_encoder
from rvc_lab.files.index import load_index
from rvc_lab.files.voice import load_voice

log = logging.getLogger(__name__)


@dataclass
class ConverterModels:
    """Everything loaded for one voice.

    Attributes
    ----------
    voice : rvc_lab.files.voice.VoiceModel
        Parsed ``.pth`` (version, tgt_sr, if_f0, ...).
    net_g : rvc_lab.models.synthesizer.Synthesizer
    encoder : rvc_lab.models.hubert.HubertBase
    index : rvc_lab.retrieval.FeatureIndex or None
    rmvpe_path : str or None
        ``rmvpe.pt`` for the rmvpe F0 method.
    rmvpe_model : object or None
        An exported RMVPE (:class:`rvc_lab.export.backends.ExportedRMVPE`), used instead of
        ``rmvpe_path`` by the rmvpe F0 method.
    fcpe_model : object or None
        An exported FCPE (:class:`rvc_lab.export.backends.ExportedFCPE`), used instead of
        torchfcpe's eager model by the fcpe F0 method.
    """

    voice: object
    net_g: object
    encoder: object
    index: object = None
    rmvpe_path: str | None = None
    rmvpe_model: object = None
    fcpe_model: object = None
    _f0: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, model: str | os.PathLike, *, hubert: str | os.PathLike | None,
             index: str | os.PathLike | None = None, rmvpe: str | os.PathLike | None = None,
             backend: str = "torch") -> "ConverterModels":
        """Load a voice ``.pth``, a content encoder (fairseq ``hubert_base.pt`` or HF dir) and an optional index.

        ``backend`` "torchscript" or "onnx": the content encoder, generator (RMVPE, FCPE) run from
        the voice's bundle, exported once into the cache (:func:`rvc_lab.export.bundle.cached_bundle`).

        Raises
        ------
        ModelFileError, IndexMismatchError, SettingsError
            Bad or missing files, an index whose dimension does not fit the voice, no encoder.
        """
        if hubert is None:
            raise SettingsError("no content encoder given: pass --hubert hubert_base.pt (fairseq) or a Hugging Face HuBERT directory")
        if backend != "torch":
            from rvc_lab.export.backends import models_from_bundle
            from rvc_lab.export.bundle import cached_bundle

            return models_from_bundle(cached_bundle(model, hubert, index, rmvpe=rmvpe), backend, rmvpe=rmvpe)
        voice = load_voice(model)
        feature_index = load_index(index, expected_dim=voice.feature_dim) if index else None
        encoder = load_content_encoder(hubert)
        net_g = build_synthesizer(voice)
        log.info("loaded %s (%s, %d Hz, f0=%s)%s", voice.path, voice.version, voice.tgt_sr, voice.if_f0,
                 f" with index {index}" if index else "")
        return cls(voice=voice, net_g=net_g, encoder=encoder, index=feature_index,
                   rmvpe_path=os.fspath(rmvpe) if rmvpe else None)

    def f0_estimator(self, method: str, filter_radius: int = 3):
        """The cached :class:`rvc_lab.f0.F0Estimator` for ``method``."""
        key = (method, filter_radius)
        if key not in self._f0:
            self._f0[key] = F0Estimator(method, rmvpe_path=self.rmvpe_path, filter_radius=filter_radius,
                                        rmvpe_model=self.rmvpe_model, fcpe_model=self.fcpe_model)
        return self._f0[key]
