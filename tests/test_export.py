"""Exported generator (TorchScript, ONNX Runtime CPU) against upstream's net_g goldens and eager.

Truths: upstream's outputs on the seeded parity voice (``netg_rvcref_v2_40k_f0``, all four
streaming variants, zero noise and seeded noise with upstream's stored draws fed as inputs), and
eager rvc_lab for the no-f0 parity voice at two lengths (sizes not frozen by the trace).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from rvc_lab.export.generator import export_onnx, export_torchscript, example_inputs
from rvc_lab.files.voice import load_voice
from rvc_lab.models.synthesizer import build_synthesizer
from tests.conftest import CACHE, load_case, rel_l2

CASE = "netg_rvcref_v2_40k_f0"
UPSTREAM_REL_L2 = 1e-4  # the eager gate of tests/test_synthesizer.py
VARIANTS = [(v, n) for v in ("full", "skip40_len50", "skip10_len60_norl2", "skip40_len50_rl2_63") for n in ("zero", "seeded")]


def _file_key(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class _Exported:
    """Both backends of one voice's streaming generator, exported once into .cache/export-tests/."""

    def __init__(self, pth):
        ort = pytest.importorskip("onnxruntime")
        self.synth = build_synthesizer(load_voice(pth))
        out = CACHE / "export-tests" / f"{pth.stem}-{_file_key(pth)}"
        out.mkdir(parents=True, exist_ok=True)
        ts_path, onnx_path = out / "generator.ts", out / "generator.onnx"
        self.gen = None
        if not ts_path.exists():
            self.gen = export_torchscript(self.synth, ts_path)
        if not onnx_path.exists():
            self.gen = export_onnx(self.synth, onnx_path)
        if self.gen is None:
            from rvc_lab.export.generator import streaming_generator

            self.gen = streaming_generator(self.synth)
        self.ts = torch.jit.load(str(ts_path))
        self.onnx = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.names = self.gen.input_names

    def run(self, backend: str, inputs: tuple) -> np.ndarray:
        if backend == "torchscript":
            with torch.no_grad():
                return self.ts(*inputs).numpy()
        feed = {n: torch.as_tensor(v).numpy() for n, v in zip(self.names, inputs)}
        return self.onnx.run(None, feed)[0]


@pytest.fixture(scope="session")
def exported_f0(parity_assets):
    return _Exported(parity_assets / "assets" / "weights" / "rvcref_v2_40k_f0.pth")


@pytest.fixture(scope="session")
def exported_nof0(parity_assets):
    return _Exported(parity_assets / "assets" / "weights" / "rvcref_v2_32k_nof0.pth")


@pytest.fixture(scope="module")
def netg_case(parity_dir):
    return load_case(parity_dir, CASE)


def _golden_inputs(meta, arrays, params):
    phone = torch.from_numpy(arrays["phone"])
    t = phone.shape[1]
    skip = params["skip_head"] or 0
    ret = params["return_length"] if params["return_length"] is not None else t
    ret2 = params["return_length2"] if params["return_length2"] is not None else ret
    flow = t - max(skip - 24, 0)
    upp = 400
    if params["noise"] == "seeded":
        draws = sorted(params["draws"], key=lambda d: d["order"])
        assert [d["fn"] for d in draws] == ["randn_like", "rand", "randn_like"]
        prior = torch.from_numpy(arrays[draws[0]["array"]])
        source = torch.from_numpy(arrays[draws[2]["array"]])  # draws[1], the sine phase, is unused
    else:
        prior, source = torch.zeros(1, 192, flow), torch.zeros(1, ret * upp, 1)
    assert prior.shape == (1, 192, flow) and source.shape == (1, ret * upp, 1)
    return (phone, torch.tensor([t]), torch.from_numpy(arrays["pitch"]), torch.from_numpy(arrays["pitchf"]),
            torch.tensor([meta["params"]["sid"]]), torch.tensor(skip), torch.tensor(ret), torch.tensor(ret2),
            prior, source)  # fmt: skip


@pytest.mark.parity
@pytest.mark.parametrize("backend", ["torchscript", "onnx"])
@pytest.mark.parametrize("variant,noise", VARIANTS)
def test_exported_generator_matches_upstream(exported_f0, netg_case, backend, variant, noise, record_property):
    meta, arrays = netg_case
    (params,) = [v for v in meta["params"]["variants"] if v["variant"] == variant and v["noise"] == noise]
    out = exported_f0.run(backend, _golden_inputs(meta, arrays, params))
    assert out.shape == (1, 1, params["output_samples"])
    err = rel_l2(out[0, 0], arrays[params["output"]])
    record_property("rel_l2", err)
    print(f"{CASE} {backend} {variant} {noise}: rel L2 {err:.3e}")
    assert err <= UPSTREAM_REL_L2


@pytest.mark.parity
@pytest.mark.parametrize("backend", ["torchscript", "onnx"])
def test_exported_nof0_generator_dynamic_lengths(exported_nof0, backend):
    """No-f0 voice: other T and windows than the trace's example, against eager rvc_lab."""
    gen, synth = exported_nof0.gen, exported_nof0.synth
    assert exported_nof0.names == ["phone", "phone_lengths", "sid", "skip_head", "return_length",
                                   "return_length2", "noise_prior"]  # fmt: skip
    for frames, skip, ret, ret2 in ((37, 0, 37, 37), (90, 40, 30, 36)):
        inputs = example_inputs(gen, frames, skip, ret, ret2, seed=frames)
        # Eager draws the prior from the global generator: seed it so its randn is the input fed.
        torch.manual_seed(5)
        expected_noise = torch.randn(inputs[-1].shape)
        inputs = (*inputs[:-1], expected_noise)
        torch.manual_seed(5)
        expected = synth.infer(inputs[0], inputs[1], None, None, inputs[2], skip, ret, ret2, noise=True).numpy()
        out = exported_nof0.run(backend, inputs)
        assert out.shape == expected.shape == (1, 1, ret2 * synth.upp)
        err = rel_l2(out[0, 0], expected[0, 0])
        print(f"nof0 {backend} T={frames} window=({skip}, {ret}, {ret2}): rel L2 {err:.3e}")
        assert err <= UPSTREAM_REL_L2
