"""Exported models (TorchScript on libtorch, ONNX on onnxruntime's CPU provider) and their bundles.

Truths: upstream's net_g goldens (``netg_rvcref_v2_40k_f0``: four streaming variants, zero noise
and upstream's stored draws fed as inputs) and HuBERT goldens (v1, v2); eager rvc_lab at lengths
and windows other than the trace's; for the exported FCPE, tones of known f0 and eager torchfcpe; faiss' own search for the index arrays; sha256 by hashlib
for the manifest.  Bundles are exported once per voice into the cache (``cached_bundle``), shared
with tests/test_conversion_parity.py's ``--backend`` runs.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from rvc_lab import cli
from rvc_lab.errors import ModelFileError
from rvc_lab.export import selfcheck
from rvc_lab.export.backends import models_from_bundle, runner
from rvc_lab.export.bundle import BUNDLE_FORMAT, MANIFEST, cached_bundle, export_bundle, read_manifest
from rvc_lab.export.generator import example_inputs, streaming_generator
from rvc_lab.files.generator_weights import build_synthesizer
from rvc_lab.files.voice import load_voice
from tests.conftest import load_case, rel_l2
from tests.tolerances import FEATURE_REL_L2, UPSTREAM_REL_L2

pytestmark = pytest.mark.parity
pytest.importorskip("onnxruntime", reason="the export extra is missing: pip install -e '.[export]'")

CASE = "netg_rvcref_v2_40k_f0"
BACKENDS = ["torchscript", "onnx"]
VARIANTS = [(v, n) for v in ("full", "skip40_len50", "skip10_len60_norl2", "skip40_len50_rl2_63") for n in ("zero", "seeded")]


@pytest.fixture(scope="session")
def bundle_v2(parity_files):
    """v2 40k f0 voice + index + RMVPE, the arguments of the --backend parity tests (same cache entry)."""
    return cached_bundle(parity_files.voice("rvcref_v2_40k_f0"), parity_files.hubert_dir,
                         parity_files.index(), rmvpe=parity_files.rmvpe)


@pytest.fixture(scope="session")
def bundle_nof0(parity_files):
    return cached_bundle(parity_files.voice("rvcref_v2_32k_nof0"), parity_files.hubert_dir)


@pytest.fixture(scope="session")
def bundle_v1(parity_files):
    return cached_bundle(parity_files.voice("rvcref_v1_48k_f0"), parity_files.hubert_dir)


def _run(bundle, stage, backend):
    m = json.loads((bundle / MANIFEST).read_text())["models"][stage]
    return runner(backend, bundle / m["files"][backend], [i["name"] for i in m["inputs"]])


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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant,noise", VARIANTS)
def test_exported_generator_matches_upstream(bundle_v2, parity_dir, backend, variant, noise):
    meta, arrays = load_case(parity_dir, CASE)
    (params,) = [v for v in meta["params"]["variants"] if v["variant"] == variant and v["noise"] == noise]
    out = _run(bundle_v2, "generator", backend)(*_golden_inputs(meta, arrays, params)).numpy()
    assert out.shape == (1, 1, params["output_samples"])
    err = rel_l2(out[0, 0], arrays[params["output"]])
    print(f"{CASE} {backend} {variant} {noise}: rel L2 {err:.3e}")
    assert err <= UPSTREAM_REL_L2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bundle_name,version", [("bundle_v1", "v1"), ("bundle_v2", "v2")])
@pytest.mark.parametrize("case", ["hubert_synth", "hubert_speech"])
def test_exported_content_encoder_matches_upstream(request, parity_dir, bundle_name, version, case, backend):
    import soundfile as sf

    bundle = request.getfixturevalue(bundle_name)
    meta, arrays = load_case(parity_dir, case)
    wav, sr = sf.read(parity_dir / meta["inputs"]["audio"]["file"], dtype="float32")
    assert sr == 16000
    feats = _run(bundle, "content_encoder", backend)(torch.from_numpy(wav)[None]).numpy()
    assert feats.shape == (1, (wav.shape[0] - 400) // 320 + 1, 256 if version == "v1" else 768)
    err = rel_l2(feats[0], arrays[version])
    print(f"{case} {version} {backend}: rel L2 {err:.3e}")
    assert err <= FEATURE_REL_L2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["f0_synth", "f0_speech"])
def test_exported_rmvpe_matches_upstream(bundle_v2, parity_files, parity_dir, case, backend):
    """Audio -> salience with the mel inside the graph, then the host's decode (threshold 0.03)."""
    import soundfile as sf

    from rvc_lab.models.rmvpe import salience_to_hz

    meta, golden = load_case(parity_dir, case)
    x, sr = sf.read(parity_files.root / "audio" / f"{case.split('_')[1]}_16k.wav", dtype="float32")
    assert sr == 16000
    salience = _run(bundle_v2, "rmvpe", backend)(torch.from_numpy(x)[None]).numpy()[0]
    assert salience.shape == golden["rmvpe_salience"].shape == (len(x) // 160 + 1, 360)
    err = rel_l2(salience, golden["rmvpe_salience"])
    np.testing.assert_array_equal(salience.argmax(1), golden["rmvpe_salience"].argmax(1))
    f0 = salience_to_hz(salience, threshold=0.03)
    f0_err = rel_l2(f0, golden["rmvpe_f0"])
    print(f"{case} rmvpe {backend}: salience rel L2 {err:.3e}, f0 rel L2 {f0_err:.3e}")
    assert err <= UPSTREAM_REL_L2 and f0_err <= UPSTREAM_REL_L2
    np.testing.assert_array_equal(f0 == 0, golden["rmvpe_f0"] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bundle_name,voice", [("bundle_nof0", "rvcref_v2_32k_nof0"), ("bundle_v1", "rvcref_v1_48k_f0")])
def test_exported_generator_dynamic_lengths(request, parity_files, bundle_name, voice, backend):
    """Other T and windows than the trace's example (50, 30, 15, 15), seeded, against eager rvc_lab."""
    bundle = request.getfixturevalue(bundle_name)
    synth = build_synthesizer(load_voice(parity_files.voice(voice)))
    models = models_from_bundle(bundle, backend)
    names = [i["name"] for i in json.loads((bundle / MANIFEST).read_text())["models"]["generator"]["inputs"]]
    f0 = ["pitch", "pitchf"] if synth.if_f0 else []
    assert names == ["phone", "phone_lengths", *f0, "sid", "skip_head", "return_length", "return_length2",
                     "noise_prior", *(["noise_source"] if synth.if_f0 else [])]  # fmt: skip
    gen = streaming_generator(synth)
    for frames, skip, ret, ret2 in ((37, 0, 37, 37), (90, 40, 30, 36), (120, 60, 44, 44)):
        phone, lengths, *rest = example_inputs(gen, frames, skip, ret, ret2, seed=frames)
        pitch, pitchf = (rest[0], rest[1]) if synth.if_f0 else (None, None)
        torch.manual_seed(frames)  # both draw upstream's three random tensors from the global generator
        expected = synth.infer(phone, lengths, pitch, pitchf, torch.tensor([0]), skip, ret, ret2, noise=True)
        torch.manual_seed(frames)
        got = models.net_g.infer(phone, lengths, pitch, pitchf, torch.tensor([0]), skip, ret, ret2, noise=True)
        assert got.shape == expected.shape == (1, 1, ret2 * synth.upp)
        err = rel_l2(got[0, 0].numpy(), expected[0, 0].numpy())
        print(f"{voice} {backend} T={frames} window=({skip}, {ret}, {ret2}): rel L2 {err:.3e}")
        assert err <= UPSTREAM_REL_L2


def test_manifest_shape_and_hashes(bundle_v2, parity_files):
    m = read_manifest(bundle_v2)
    assert m["format"] == BUNDLE_FORMAT and m["precision"] == "fp32"
    assert m["runtimes"]["torch"] == torch.__version__.split("+")[0] and m["runtimes"]["onnx_opset"] >= 17
    assert m["voice"] == {**m["voice"], "version": "v2", "sample_rate": 40000, "f0": True, "feature_dim": 768,
                          "samples_per_frame": 400}
    files = sorted(p.name for p in bundle_v2.iterdir() if p.name != MANIFEST)
    assert sorted(m["sha256"]) == files
    for name in files:
        assert m["sha256"][name] == hashlib.sha256((bundle_v2 / name).read_bytes()).hexdigest()
    gen = m["models"]["generator"]
    assert gen["files"] == {"torchscript": "generator.ts", "onnx": "generator.onnx"}
    shapes = {i["name"]: (i["dtype"], i["shape"]) for i in gen["inputs"]}
    assert shapes["noise_prior"] == ("float32", [1, 192, "T - max(skip_head - 24, 0)"])
    assert shapes["skip_head"] == ("int64", []) and shapes["pitch"] == ("int64", [1, "T"])
    assert m["index"]["nprobe"] == 1 and m["index"]["k"] == 8 and m["index"]["dim"] == 768
    fcpe = m["models"]["fcpe"]
    assert fcpe["files"] == {"torchscript": "fcpe.ts", "onnx": "fcpe.onnx"} and fcpe["precision"] == "fp32"
    assert fcpe["inputs"] == [{"name": "audio", "dtype": "float32", "shape": [1, "N"]}]
    assert fcpe["outputs"] == [{"name": "salience", "dtype": "float32", "shape": [1, "floor(N / 160) + 1", 360]}]
    assert {k: fcpe["decode"][k] for k in ("threshold", "local_radius", "edge")} == \
        {"threshold": 0.006, "local_radius": 4, "edge": "clamp"}
    assert set(m["self_check"]["fcpe"]) == {"torchscript", "onnx"}
    assert all(0.0 <= e <= selfcheck.GATES["fcpe"] for e in m["self_check"]["fcpe"].values())


# -- FCPE (torchfcpe's bundled model) --------------------------------------------------------------


@pytest.fixture(scope="session")
def eager_fcpe():
    from rvc_lab.f0.fcpe import load_bundled_fcpe

    return load_bundled_fcpe()


def _eager_fcpe_f0(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.infer(torch.from_numpy(np.ascontiguousarray(x))[None], sr=16000, decoder_mode="local_argmax",
                           threshold=0.006).reshape(-1).numpy()


def _cents(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 1200.0 * np.abs(np.log2(np.asarray(a, np.float64) / np.asarray(b, np.float64)))


def test_fcpe_cents_table_is_the_model_files(bundle_v2, eager_fcpe):
    """The manifest's bin cents are the checkpoint's cent_table bit for bit (not a recomputed linspace)."""
    table = read_manifest(bundle_v2)["models"]["fcpe"]["decode"]["cents_table"]
    assert len(table) == 360
    assert torch.equal(torch.tensor(table, dtype=torch.float32), eager_fcpe.model.cent_table)
    np.testing.assert_allclose(table[0], 1200 * np.log2(32.7 / 10), atol=0.01)
    np.testing.assert_allclose(table[-1], 1200 * np.log2(1975.5 / 10), atol=0.01)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("f0_hz", [220.0, 440.0])
def test_exported_fcpe_finds_a_known_f0(bundle_v2, backend, f0_hz):
    """Harmonic tone of known f0, at lengths off the 160-sample grid: every inner frame voiced, within 3 cents."""
    from rvc_lab.testsignals import harmonic_complex

    fcpe = models_from_bundle(bundle_v2, backend).fcpe_model
    tone = harmonic_complex(f0_hz, seconds=1.0)
    for n in (16000 - 37, 9999):
        x = tone.audio[:n]
        f0 = fcpe.infer(torch.from_numpy(x)[None]).reshape(-1).numpy()
        assert f0.shape == (n // 160 + 1,) and f0.dtype == np.float32
        inner = f0[3:-3]  # the first and last frames see the reflect padding
        assert (inner > 0).all(), f"unvoiced inner frames: {np.flatnonzero(inner == 0)}"
        worst = float(_cents(inner, f0_hz).max())
        print(f"fcpe {backend} {f0_hz:g} Hz, {n} samples: worst {worst:.2f} cents over {inner.size} frames")
        assert worst <= 3.0  # measured: 1.81 (220 Hz) and 1.44 (440 Hz) cents at worst, both formats


@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_fcpe_shortest_input(bundle_v2, backend):
    """min_samples (433: the reflect padding is 432) runs; one sample fewer is refused before the file runs."""
    from rvc_lab.errors import InvalidAudioError

    fcpe = models_from_bundle(bundle_v2, backend).fcpe_model
    assert fcpe.min_samples == 433
    x = 0.1 * torch.randn(1, 433, generator=torch.Generator().manual_seed(0))
    assert fcpe.infer(x).shape == (1, 3, 1)
    with pytest.raises(InvalidAudioError, match="at least 433 samples"):
        fcpe.infer(x[:, :432])
    assert fcpe.calls == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_fcpe_matches_eager_torchfcpe(bundle_v2, parity_files, eager_fcpe, backend):
    """Voiced audio (speech, and a tone with a silent gap and a noise burst) at lengths off the 160 grid."""
    import soundfile as sf

    from rvc_lab.testsignals import with_gaps

    speech, sr = sf.read(parity_files.root / "audio" / "speech_16k.wav", dtype="float32")
    assert sr == 16000
    fcpe = models_from_bundle(bundle_v2, backend).fcpe_model
    gaps = with_gaps(200.0, seconds=1.5).audio
    for name, x in (("speech", speech), ("speech", speech[: len(speech) - 77]), ("speech", speech[3000:10041]),
                    ("gaps", gaps), ("gaps", gaps[:8123])):
        want = _eager_fcpe_f0(eager_fcpe, x)
        got = fcpe.infer(torch.from_numpy(np.ascontiguousarray(x))[None]).reshape(-1).numpy()
        assert got.shape == want.shape == (len(x) // 160 + 1,)
        flips = int(((got > 0) != (want > 0)).sum())
        both = (got > 0) & (want > 0)
        assert both.sum() >= 0.25 * len(want), "too few voiced frames to compare"
        worst = float(_cents(got[both], want[both]).max())
        print(f"fcpe {backend} {name} {len(x)} samples: {int(both.sum())} voiced frames, worst {worst:.4f} cents, "
              f"{flips} voicing flips")
        # measured: torchscript 0 cents and 0 flips (bit-identical f0); onnx <= 0.0018 cents, 0 flips
        assert worst <= (1e-3 if backend == "torchscript" else 0.02)
        assert flips <= (0 if backend == "torchscript" else 2)  # onnx: a frame at the threshold may flip


def test_backend_runs_use_the_exported_fcpe(bundle_v2, parity_files, tmp_path):
    """A stream with f0 fcpe decodes the bundle's file with the manifest's table: shift it an octave, pitchf doubles."""
    import soundfile as sf

    from rvc_lab.convert.streaming import StreamSettings, stream_file
    from rvc_lab.export.backends import ExportedFCPE

    shifted = _linked_copy(bundle_v2, tmp_path)
    m = json.loads((shifted / MANIFEST).read_text())
    m["models"]["fcpe"]["decode"]["cents_table"] = [c + 1200.0 for c in m["models"]["fcpe"]["decode"]["cents_table"]]
    (shifted / MANIFEST).write_text(json.dumps(m))
    x, sr = sf.read(parity_files.root / "audio/synth_48k.wav", dtype="float32")
    settings = StreamSettings(block_time=0.25, extra_time=0.5, f0_method="fcpe", index_rate=0.0, noise=False)
    pitchf = {}
    for label, bundle in (("intact", bundle_v2), ("octave", shifted)):
        models = models_from_bundle(bundle, "onnx")
        _, _, conv = stream_file(models, x[: int(1.0 * sr)], sr, settings, record=True)
        assert isinstance(models.f0_estimator("fcpe").impl.model, ExportedFCPE)
        assert models.fcpe_model.calls == len(conv.records) > 0  # one run of the file per block
        pitchf[label] = np.concatenate([r["pitchf"] for r in conv.records])
    voiced = pitchf["intact"] > 0
    assert voiced.mean() > 0.5
    np.testing.assert_array_equal(pitchf["octave"] > 0, voiced)
    np.testing.assert_allclose(pitchf["octave"][voiced], 2 * pitchf["intact"][voiced], rtol=1e-5)


def _search_like_faiss(q, vectors, list_ids, offsets, centroids, nprobe, k):
    """A host's search from the bundle's arrays alone (docs/bundle.md): nprobe lists, exact L2, scan order."""
    out_d, out_i = [], []
    for x in q.astype(np.float32):
        cd = ((centroids - x) ** 2).sum(1)
        probe = np.argsort(cd, kind="stable")[:nprobe]
        ids = np.concatenate([list_ids[offsets[p]:offsets[p + 1]] for p in probe])
        d = ((vectors[ids] - x) ** 2).sum(1)
        order = np.argsort(d, kind="stable")[:k]
        out_d.append(d[order]), out_i.append(ids[order])
    return np.array(out_d), np.array(out_i)


def test_index_arrays_reproduce_faiss_search(bundle_v2, parity_dir):
    import faiss

    m = read_manifest(bundle_v2)["index"]
    arr = {key: np.load(bundle_v2 / m[key]) for key in ("vectors", "lists", "list_ids", "list_offsets", "centroids")}
    index = faiss.read_index(str(bundle_v2 / m["faiss"]))
    assert arr["vectors"].shape == (index.ntotal, m["dim"])
    # lists: the list of each id agrees with where list_ids stores it
    for li in range(len(arr["list_offsets"]) - 1):
        assert (arr["lists"][arr["list_ids"][arr["list_offsets"][li]:arr["list_offsets"][li + 1]]] == li).all()
    _, golden = load_case(parity_dir, "hubert_speech")
    q = golden["v2"][:60]  # real content features as queries
    q = np.concatenate([q, arr["vectors"][:5]])  # and stored vectors themselves (distance 0)
    fd, fi = index.search(np.ascontiguousarray(q, dtype=np.float32), m["k"])
    hd, hi = _search_like_faiss(q, arr["vectors"], arr["list_ids"], arr["list_offsets"], arr["centroids"],
                                m["nprobe"], m["k"])
    assert (hi == fi).mean() >= 0.99, "neighbour ids differ from faiss"
    np.testing.assert_allclose(hd, fd, rtol=1e-4, atol=1e-3)


# -- bad bundles and bad requests ----------------------------------------------------------------


def _linked_copy(bundle, tmp_path):
    """A copy of ``bundle`` whose model files are symlinks (cheap) and whose manifest is a real file."""
    out = tmp_path / "bundle"
    out.mkdir()
    for p in bundle.iterdir():
        if p.name == MANIFEST:
            shutil.copyfile(p, out / p.name)
        else:
            (out / p.name).symlink_to(p)
    return out


def test_tampered_bundles_are_refused(bundle_nof0, tmp_path):
    b = _linked_copy(bundle_nof0, tmp_path)
    read_manifest(b)  # the intact copy loads
    m = json.loads((b / MANIFEST).read_text())
    m["sha256"]["generator.onnx"] = "0" * 64
    (b / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match=r"generator\.onnx: sha256 .* does not match"):
        models_from_bundle(b, "onnx")
    shutil.copyfile(bundle_nof0 / MANIFEST, b / MANIFEST)
    (b / "extra.py").write_text("import os\n")
    with pytest.raises(ModelFileError, match="extra.py: not listed in the manifest"):
        read_manifest(b)
    (b / "extra.py").unlink()
    (b / "generator.ts").unlink()
    with pytest.raises(ModelFileError, match="generator.ts: listed in the manifest but missing"):
        read_manifest(b)


def test_bundle_of_another_format_or_voice_version(bundle_nof0, tmp_path):
    b = _linked_copy(bundle_nof0, tmp_path)
    with pytest.raises(ModelFileError, match="holds a v2 voice, expected v1"):
        models_from_bundle(b, "torchscript", expect_version="v1")
    m = json.loads((b / MANIFEST).read_text())
    m["format"] = "rvc_lab-bundle/2"
    (b / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(ModelFileError, match="'rvc_lab-bundle/2' is not 'rvc_lab-bundle/1'"):
        read_manifest(b)
    with pytest.raises(ModelFileError, match="not an rvc_lab bundle"):
        read_manifest(tmp_path)


def test_cli_bundle_flag_errors(bundle_nof0, parity_files, tmp_path, capsys):
    wav = parity_files.root / "audio/synth_16k.wav"
    voice = str(parity_files.voice("rvcref_v2_32k_nof0"))
    cases = [
        (["--bundle", str(bundle_nof0), "--model", voice, "--backend", "onnx"], "not both (--model given with --bundle)"),
        (["--bundle", str(bundle_nof0)], "add --backend torchscript or --backend onnx"),
        (["--backend", "onnx"], "--model and --hubert required"),
        (["--bundle", str(bundle_nof0), "--backend", "onnx", "--precision", "bf16"], "--precision bf16 applies to --backend torch"),
    ]
    for extra, message in cases:
        rc = cli.main(["convert", str(wav), "-o", str(tmp_path / "o.wav"), "--f0-method", "pm", *extra])
        assert rc == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_missing_onnxruntime_says_how_to_install(monkeypatch, tmp_path, parity_files, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    rc = cli.main(["export", "-o", str(tmp_path / "b"), "--model", str(parity_files.voice("rvcref_v2_32k_nof0")),
                   "--hubert", str(parity_files.hubert_dir)])
    assert rc == 2
    assert "pip install -e '.[export]'" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_unknown_precision_and_format_fail_before_loading(tmp_path, capsys):
    for extra, message in ((["--precision", "fp8"], "bundles are written in fp32, fp16, bf16"),
                           (["--formats", "tflite"], "choose from torchscript, onnx")):
        rc = cli.main(["export", "-o", str(tmp_path / "b"), "--model", "missing.pth", "--hubert", "missing", *extra])
        assert rc == 2
        assert message in capsys.readouterr().err


def test_failed_self_check_leaves_no_bundle(monkeypatch, parity_files, tmp_path):
    """A file that misses the gate: named stage, runtime and figure; nothing left behind."""
    monkeypatch.setitem(selfcheck.GATES, "generator", -1.0)  # no figure passes a negative gate
    out = tmp_path / "b"
    with pytest.raises(selfcheck.ExportCheckError, match=r"exported generator \(torchscript\) misses the parity gate"):
        export_bundle(out, model=parity_files.voice("rvcref_v2_32k_nof0"), hubert=parity_files.hubert_dir,
                      formats="torchscript")
    assert list(tmp_path.iterdir()) == []


def test_compare_backends_table(bundle_v2, parity_files):
    """The report's backend table: eager is its own reference; exported runs stay within the gate."""
    import soundfile as sf

    from rvc_lab.convert.models import ConverterModels
    from rvc_lab.convert.streaming import StreamSettings
    from rvc_lab.export.compare import compare_backends

    torch_models = ConverterModels.load(parity_files.voice("rvcref_v2_40k_f0"), hubert=parity_files.hubert_dir,
                                        index=parity_files.index(), rmvpe=parity_files.rmvpe)
    by_backend = {"torch": torch_models, **{b: models_from_bundle(bundle_v2, b) for b in BACKENDS}}
    x, sr = sf.read(parity_files.root / "audio/synth_48k.wav", dtype="float32")
    settings = StreamSettings(block_time=0.25, extra_time=0.5, f0_method="rmvpe", index_rate=0.5, seed=3)
    table = compare_backends(by_backend, x[: int(1.5 * sr)], sr, settings)
    print(table.to_string())
    assert list(table.index) == ["torch", "torchscript", "onnx"]
    assert table.loc["torch", "rel_l2_vs_torch"] == 0.0 and table.loc["torch", "total_vs_torch"] == 1.0
    assert (table["rel_l2_vs_torch"] <= UPSTREAM_REL_L2).all() and table["sola_offsets_equal"].all()
    assert (table[["content_features", "f0", "generator"]] > 0).all().all()


@pytest.fixture(scope="session")
def bundle_bf16(parity_files):
    """v2 32k no-f0 voice (the smallest graph) exported in bf16, both formats: one export per session."""
    return cached_bundle(parity_files.voice("rvcref_v2_32k_nof0"), parity_files.hubert_dir,
                         precision="bf16")


def test_bf16_bundle_dtypes_and_unsupported_onnx(bundle_bf16):
    """Manifest dtypes say bfloat16; onnxruntime's CPU provider (no bf16 kernels) is an entry, not an error."""
    from rvc_lab.errors import SettingsError

    manifest = read_manifest(bundle_bf16)
    assert manifest["precision"] == "bf16"
    models = manifest["models"]
    assert [i["dtype"] for i in models["content_encoder"]["inputs"]] == ["bfloat16"]
    dtypes = {i["name"]: i["dtype"] for i in models["generator"]["inputs"]}
    assert dtypes["phone"] == dtypes["noise_prior"] == "bfloat16" and dtypes["sid"] == "int64"
    assert models["generator"]["outputs"][0]["dtype"] == "bfloat16"
    for stage in ("content_encoder", "generator"):
        assert models[stage]["precision"] == "bf16"
        assert models[stage]["fidelity"]["torchscript"]["supported"] is True
        onnx = models[stage]["fidelity"]["onnx"]
        assert onnx["supported"] is False and onnx["reason"], onnx
    with pytest.raises(SettingsError, match=r"content_encoder in bf16 is unsupported on onnx"):
        models_from_bundle(bundle_bf16, "onnx")
    ts = models_from_bundle(bundle_bf16, "torchscript")
    feats = ts.encoder.extract_features(torch.zeros(1, 7040), "v2")
    assert feats.dtype == torch.float32 and feats.shape == (1, 21, 768)


def test_bf16_fidelity_figures_match_a_recomputation(bundle_bf16, parity_files):
    """The manifest's generator SNR/rel L2, recomputed here from generator.ts against eager fp32."""
    from rvc_lab.metrics.spectral import rel_l2 as metric_rel_l2
    from rvc_lab.metrics.spectral import snr_db

    figures = read_manifest(bundle_bf16)["models"]["generator"]["fidelity"]["torchscript"]
    eager = streaming_generator(build_synthesizer(load_voice(parity_files.voice("rvcref_v2_32k_nof0"))))
    ts = torch.jit.load(str(bundle_bf16 / "generator.ts"))
    snrs, errs = [], []
    for frames, skip, ret, ret2 in selfcheck.GENERATOR_WINDOWS:
        inputs = list(example_inputs(eager, frames, skip, ret, ret2, seed=frames))
        inputs[-1] = torch.randn(inputs[-1].shape, generator=torch.Generator().manual_seed(frames))  # prior draw
        with torch.no_grad():
            want = eager(*inputs).numpy()
            low = [t.to(torch.bfloat16) if t.is_floating_point() else t for t in inputs]
            got = ts(*low).float().numpy()
        snrs.append(snr_db(got, want))
        errs.append(metric_rel_l2(got, want))
    print(f"recomputed SNR {min(snrs):.2f} dB (manifest {figures['output_snr_db']:.2f}), "
          f"rel L2 {max(errs):.3g} (manifest {figures['output_rel_l2']:.3g}), MCD {figures['output_mcd_db']:.3f} dB")
    assert np.isfinite(min(snrs)) and min(snrs) > 20.0
    assert abs(min(snrs) - figures["output_snr_db"]) < 0.5
    assert max(errs) == pytest.approx(figures["output_rel_l2"], rel=0.1)
    assert 0.0 <= figures["output_mcd_db"] < 5.0
    enc = read_manifest(bundle_bf16)["models"]["content_encoder"]["fidelity"]["torchscript"]
    assert 0.99 < enc["feature_cosine"] <= 1.0 + 1e-9 and 0.0 < enc["feature_rel_l2"] < 0.1
