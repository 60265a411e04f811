"""Exported models in rvc_lab's chain: the same stage functions, other engines underneath.

:class:`ExportedContentEncoder` and :class:`ExportedGenerator` answer the two calls the stage
functions make (``extract_features`` and ``infer``) by running a TorchScript file (libtorch's
interpreter, as a C++ or ``tch`` host would) or an ONNX file (onnxruntime's CPU provider).
:class:`ExportedRMVPE` and :class:`ExportedFCPE` stand in for the two neural F0 models the same
way.  Retrieval, the other F0 methods and every DSP step stay as they are.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

from rvc_lab.errors import InvalidAudioError, SettingsError
from rvc_lab.export.formats import cast_to_spec, onnx_session
from rvc_lab.models.synthesizer import FLOW_CONTEXT_FRAMES

BACKENDS = ("torch", "torchscript", "onnx")
EXPORTED_BACKENDS = ("torchscript", "onnx")

log = logging.getLogger(__name__)


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise SettingsError(f"--backend {backend!r} unknown; choose one of {', '.join(BACKENDS)}")
    return backend


class TorchScriptRunner:
    """A TorchScript file run by libtorch's interpreter (no Python code from the file runs)."""

    def __init__(self, path: os.PathLike):
        self.path = os.fspath(path)
        self.module = torch.jit.load(self.path, map_location="cpu").eval()

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(*inputs)


class OnnxRunner:
    """An ONNX file on onnxruntime's CPU provider; inputs given in ``input_names`` order."""

    def __init__(self, path: os.PathLike, input_names: list[str]):
        self.path = os.fspath(path)
        self.session = onnx_session(path)
        # ONNX drops inputs the graph never reads (phone_lengths of a full-length call, ...)
        declared = {i.name for i in self.session.get_inputs()}
        self.input_names = list(input_names)
        self._used = [n in declared for n in self.input_names]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {n: torch.as_tensor(t).numpy() for n, t, used in zip(self.input_names, inputs, self._used) if used}
        return torch.from_numpy(np.ascontiguousarray(self.session.run(None, feed)[0]))


def runner(backend: str, path: os.PathLike, input_names: list[str]):
    """The runner of one exported file for ``backend`` ("torchscript" or "onnx")."""
    if backend == "torchscript":
        return TorchScriptRunner(path)
    if backend == "onnx":
        return OnnxRunner(path, input_names)
    raise SettingsError(f"backend {backend!r} runs no exported files; choose one of {', '.join(EXPORTED_BACKENDS)}")


class ExportedContentEncoder:
    """Stands in for :class:`rvc_lab.models.hubert.HubertBase` in :func:`stages.content_features`.

    One file serves one feature version (the voice's); ``extract_features`` refuses the other.
    """

    exported = True

    def __init__(self, run, version: str, backend: str, spec_inputs: list[dict] | None = None,
                 precision: str = "fp32"):
        self.run = run
        self.version = version
        self.backend = backend
        self.spec_inputs = spec_inputs or [{"name": "audio", "dtype": "float32"}]
        self.precision = precision

    def extract_features(self, wav: torch.Tensor, version: str) -> torch.Tensor:
        """[1, N] float32 16 kHz -> [1, T, C] float32 (see :mod:`rvc_lab.export.content`).

        The file takes and gives its bundle's dtype (float16/bfloat16 bundles): cast here.
        """
        if version != self.version:
            raise SettingsError(f"this exported content encoder gives {self.version} features, not {version}")
        return self.run(*cast_to_spec((wav.reshape(1, -1),), self.spec_inputs)).to(torch.float32)


class ExportedRMVPE:
    """Stands in for :class:`rvc_lab.models.rmvpe.RMVPE` in the rmvpe F0 method (salience from the file)."""

    exported = True

    def __init__(self, run, backend: str):
        self.run = run
        self.backend = backend

    def salience(self, x16k) -> torch.Tensor:
        """[N] 16 kHz -> float32 [N // 160 + 1, 360]."""
        audio = torch.as_tensor(np.ascontiguousarray(x16k)).to(torch.float32).reshape(1, -1)
        return self.run(audio)[0]

    def infer_from_audio(self, x16k, threshold: float = 0.03) -> np.ndarray:
        """F0 in Hz [N // 160 + 1], 0 = unvoiced: the decode of :func:`salience_to_hz`."""
        from rvc_lab.models.rmvpe import salience_to_hz

        return salience_to_hz(self.salience(x16k).numpy(), threshold)


class ExportedFCPE:
    """Stands in for torchfcpe's bundled model in the fcpe F0 method (latent from the file, decode here).

    Answers the one call :class:`rvc_lab.f0.fcpe.FcpePitch` makes, torchfcpe's ``infer``, for its
    one setting (16 kHz, ``local_argmax``); ``calls`` counts the file's runs.
    """

    exported = True

    def __init__(self, run, backend: str, cents_table: list[float], min_samples: int):
        self.run = run
        self.backend = backend
        self.cents_table = torch.tensor(cents_table, dtype=torch.float32)
        self.min_samples = int(min_samples)
        self.calls = 0

    def salience(self, x16k) -> torch.Tensor:
        """[N] 16 kHz -> float32 [N // 160 + 1, 360] (torchfcpe's latent)."""
        audio = torch.as_tensor(np.ascontiguousarray(x16k)).to(torch.float32).reshape(1, -1)
        if audio.shape[1] < self.min_samples:
            raise InvalidAudioError(f"the exported fcpe needs at least {self.min_samples} samples at 16 kHz, "
                                    f"got {audio.shape[1]}")
        self.calls += 1
        return self.run(audio)[0]

    def infer(self, wav: torch.Tensor, sr: int = 16000, decoder_mode: str = "local_argmax",
              threshold: float = 0.006) -> torch.Tensor:
        """f0 float32 [1, N // 160 + 1, 1] in Hz, 0 = unvoiced: torchfcpe's ``infer`` for ``wav`` [1, N]."""
        from rvc_lab.f0.fcpe import latent_to_hz

        if sr != 16000 or decoder_mode != "local_argmax":
            raise SettingsError(f"the exported fcpe runs at 16 kHz with the local_argmax decode, "
                                f"not sr={sr}, {decoder_mode}")
        return latent_to_hz(self.salience(wav), self.cents_table, threshold).reshape(1, -1, 1)


class ExportedGenerator:
    """Stands in for :class:`rvc_lab.models.synthesizer.Synthesizer` in :func:`stages.run_generator`.

    The host side of the streaming interface: window sizes from the call's arguments, and the
    random draws made here from torch's global generator in upstream's order and shapes (randn
    for the prior, ``rand(1, 1)`` consumed and unused, randn for the source), so a seed set before
    the call reproduces upstream's seeded output; ``noise=False`` feeds zeros.
    """

    exported = True

    def __init__(self, run, *, if_f0: bool, upp: int, inter_channels: int, n_speakers: int, backend: str,
                 spec_inputs: list[dict] | None = None, precision: str = "fp32"):
        self.run = run
        self.spec_inputs = spec_inputs  # the manifest's inputs: their dtypes (None: all float32)
        self.precision = precision
        self.if_f0 = if_f0
        self.upp = upp
        self.inter_channels = inter_channels
        self.n_speakers = n_speakers
        self.backend = backend

    def infer(self, phone, phone_lengths, pitch, pitchf, sid, skip_head=None, return_length=None,
              return_length2=None, noise: bool = True) -> torch.Tensor:
        """Same arguments and result as :meth:`Synthesizer.infer`."""
        t = int(phone.shape[1])
        if skip_head is None or return_length is None:
            skip, ret = 0, t
        else:
            skip, ret = int(skip_head), int(return_length)
        ret2 = ret if return_length2 is None else int(return_length2)
        sid = torch.as_tensor(sid, dtype=torch.long).reshape(1)
        if not 0 <= int(sid) < self.n_speakers:
            raise SettingsError(f"speaker id {int(sid)} out of range: the model has {self.n_speakers} speaker(s)")
        flow = t - max(skip - FLOW_CONTEXT_FRAMES, 0)
        draw = torch.randn if noise else torch.zeros
        prior = draw(1, self.inter_channels, flow)
        inputs = [phone.to(torch.float32), torch.as_tensor(phone_lengths, dtype=torch.long).reshape(1)]
        if self.if_f0:
            if pitch is None or pitchf is None:
                raise SettingsError("this voice model uses pitch (f0): pitch and pitchf are required")
            if noise:
                torch.rand(1, 1)  # upstream's sine phase: drawn, then unused (zeroed)
            source = draw(1, ret * self.upp, 1)
            inputs += [torch.as_tensor(pitch, dtype=torch.long), torch.as_tensor(pitchf, dtype=torch.float32)]
        inputs += [sid, torch.tensor(skip), torch.tensor(ret), torch.tensor(ret2), prior]
        if self.if_f0:
            inputs.append(source)
        if self.spec_inputs is not None:
            inputs = cast_to_spec(inputs, self.spec_inputs)
        return self.run(*inputs).to(torch.float32)


def models_from_bundle(bundle: os.PathLike, backend: str, *, rmvpe: os.PathLike | None = None,
                       expect_version: str | None = None):
    """A :class:`rvc_lab.convert.models.ConverterModels` whose encoder, generator (RMVPE, FCPE) run ``bundle``'s files.

    Parameters
    ----------
    bundle : path-like
        Folder written by ``rvc-lab export`` (hashes checked first).
    backend : {"torchscript", "onnx"}
    rmvpe : path-like, optional
        ``rmvpe.pt`` for the rmvpe F0 method when the bundle holds no exported RMVPE.  The fcpe
        F0 method runs the bundle's FCPE (f0 voices); the other F0 methods run eager.
    expect_version : {"v1", "v2"}, optional
        Refuse a bundle of another voice version.

    Raises
    ------
    ModelFileError
        Not a bundle, hashes that do not match, a bundle without this backend's files, another version.
    """
    from rvc_lab.convert.models import ConverterModels
    from rvc_lab.errors import ModelFileError
    from rvc_lab.export.bundle import read_manifest
    from rvc_lab.files.index import load_index
    from rvc_lab.files.voice import VoiceModel

    if backend not in EXPORTED_BACKENDS:
        raise SettingsError(f"--bundle needs --backend torchscript or onnx, not {backend!r}")
    manifest = read_manifest(bundle)
    bundle = os.fspath(bundle)
    v = manifest["voice"]
    if expect_version is not None and v["version"] != expect_version:
        raise ModelFileError(bundle, f"bundle holds a {v['version']} voice, expected {expect_version}")
    files = {}
    precision = manifest.get("precision", "fp32")
    for stage in ("content_encoder", "generator"):
        _check_supported(bundle, manifest["models"][stage], stage, backend, precision)
        name = manifest["models"][stage]["files"].get(backend)
        if name is None:
            raise ModelFileError(bundle, f"bundle has no {backend} file for the {stage} "
                                         f"(it has: {', '.join(manifest['models'][stage]['files'])})")
        files[stage] = os.path.join(bundle, name)
    voice = VoiceModel(path=bundle, version=v["version"], tgt_sr=int(v["sample_rate"]), if_f0=bool(v["f0"]),
                       config=[], weights={}, info=f"bundle of {v.get('source', '?')}",
                       n_speakers=int(v["speakers"]), feature_dim=int(v["feature_dim"]))
    gen_inputs = manifest["models"]["generator"]["inputs"]
    encoder = ExportedContentEncoder(runner(backend, files["content_encoder"], ["audio"]), v["version"], backend,
                                     manifest["models"]["content_encoder"]["inputs"], precision)
    net_g = ExportedGenerator(runner(backend, files["generator"], [i["name"] for i in gen_inputs]), if_f0=voice.if_f0,
                              upp=int(v["samples_per_frame"]), inter_channels=int(v["inter_channels"]),
                              n_speakers=voice.n_speakers, backend=backend, spec_inputs=gen_inputs, precision=precision)
    rmvpe_model = None
    if manifest["models"].get("rmvpe"):
        rm = manifest["models"]["rmvpe"]
        rmvpe_model = ExportedRMVPE(runner(backend, os.path.join(bundle, rm["files"][backend]), ["audio"]), backend)
        if rmvpe:
            log.info("--rmvpe %s ignored: the bundle's exported RMVPE runs", rmvpe)
            rmvpe = None
    fcpe_model = None
    if manifest["models"].get("fcpe"):
        fc = manifest["models"]["fcpe"]
        fcpe_model = ExportedFCPE(runner(backend, os.path.join(bundle, fc["files"][backend]), ["audio"]), backend,
                                  fc["decode"]["cents_table"], fc["min_samples"])
    index = None
    if manifest.get("index"):
        index = load_index(os.path.join(bundle, manifest["index"]["faiss"]), expected_dim=voice.feature_dim)
    return ConverterModels(voice=voice, net_g=net_g, encoder=encoder, index=index,
                           rmvpe_path=os.fspath(rmvpe) if rmvpe else None, rmvpe_model=rmvpe_model,
                           fcpe_model=fcpe_model)


def _check_supported(bundle: str, entry: dict, stage: str, backend: str, precision: str) -> None:
    """Refuse a model whose manifest says this backend cannot run it at the bundle's precision.

    Raises
    ------
    SettingsError
        Naming the stage, the format, the precision and the runtime's reason (from export time).
    """
    figures = (entry.get("fidelity") or {}).get(backend)
    if figures is not None and not figures.get("supported", True):
        raise SettingsError(f"bundle {bundle}: the {stage} in {precision} is unsupported on {backend} "
                            f"({figures.get('reason', 'no reason recorded')}); use the other backend "
                            "or an fp32 bundle")
