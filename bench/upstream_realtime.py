"""Upstream RVC's realtime inference, imported from a user's checkout, timed beside rvc_lab.

Nothing of upstream is copied here: ``UpstreamRealtime`` imports ``infer/rtrvc.py`` from the
checkout given on the command line (RVC-Project/Retrieval-based-Voice-Conversion-WebUI, the
2026 layout with ``infer/rtrvc.py``, ``infer/hubert.py``, ``i18n/``, ``tools/``) and calls its
``RVC.infer`` exactly as ``realtime_gui.py`` does once per block: on the 16 kHz ring, with the
block's ``block_frame_16k``, ``skip_head`` and ``return_length``.  That call is upstream's whole
model path (HuBERT, index blend, F0, ``net_g.infer``); the few milliseconds of resampling,
gating and SOLA around it in ``audio_callback`` are not counted for upstream, while rvc_lab's
times are of the full ``process_block``: the comparison leans towards upstream.

Needs what upstream imports: transformers (the ``dev`` extra), parselmouth, faiss, torchaudio,
torchfcpe; and the assets in upstream's layout (``hubert_base/``, ``rmvpe/rmvpe.pt``, the voice
and the index), which ``../shared/parity/make_assets.py`` writes.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import types
from pathlib import Path

import torch


@contextlib.contextmanager
def _working_directory(path: Path):
    # upstream reads ./i18n/locale/*.json relative to the working directory when imported
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


class UpstreamRealtime:
    """Upstream's ``RVC`` object for one stream configuration (CPU, float32).

    Parameters
    ----------
    checkout : path
        Root of an upstream checkout (holds ``infer/rtrvc.py``).
    assets : path
        Directory in upstream's ``assets/`` layout: ``hubert_base/`` (Hugging Face HuBERT),
        ``rmvpe/rmvpe.pt``.
    voice, index : path
        The ``.pth`` voice and its ``added_*.index`` (index unused when ``index_rate`` is 0).
    pitch, formant, index_rate : float
        As :class:`rvc_lab.convert.streaming.StreamSettings` (semitones, semitones, 0..1).
    f0_method : {"rmvpe", "fcpe"}
    """

    def __init__(self, checkout, assets, voice, index, *, pitch: float, formant: float, index_rate: float,
                 f0_method: str):
        checkout, assets = Path(checkout).resolve(), Path(assets).resolve()
        if not (checkout / "infer" / "rtrvc.py").is_file():
            raise FileNotFoundError(f"{checkout} is not an upstream RVC checkout (no infer/rtrvc.py)")
        if str(checkout) not in sys.path:
            sys.path.insert(0, str(checkout))
        with _working_directory(checkout), contextlib.redirect_stdout(io.StringIO()):
            import infer.hubert as upstream_hubert
            import infer.rtrvc as rtrvc
        upstream_hubert.HUBERT_MODEL_PATH = assets / "hubert_base"  # upstream: <checkout>/assets
        config = types.SimpleNamespace(device=torch.device("cpu"), is_half=False)
        with contextlib.redirect_stdout(io.StringIO()) as said:
            self.rvc = rtrvc.RVC(pitch, formant, os.fspath(voice), os.fspath(index), index_rate, config)
        if getattr(self.rvc, "net_g", None) is None or not hasattr(self.rvc, "model"):
            # RVC.__init__ prints its exceptions instead of raising them
            raise RuntimeError(f"upstream RVC failed to load:\n{said.getvalue()}")
        if f0_method == "rmvpe":
            from infer.rmvpe import RMVPE  # upstream would read ./assets/rmvpe/rmvpe.pt

            self.rvc.model_rmvpe = RMVPE(os.fspath(assets / "rmvpe" / "rmvpe.pt"), is_half=False,
                                         device=torch.device("cpu"))
        self.f0_method = f0_method

    def infer(self, ring16k: torch.Tensor, geometry) -> torch.Tensor:
        """One block: ``RVC.infer`` on the float32 16 kHz ring ``[160 * input_frame / zc]``.

        ``geometry`` is the block's :class:`rvc_lab.convert.streaming.StreamGeometry`.  Returns
        upstream's ``[return_length2 * tgt_sr / 100]`` samples at the voice's rate.
        """
        with contextlib.redirect_stdout(io.StringIO()):  # upstream prints stage times per block
            return self.rvc.infer(ring16k, geometry.block_frame_16k, geometry.skip_head, geometry.return_length,
                                  self.f0_method)
