"""Seeded demo assets: real formats (loaded by the real loaders), deterministic tensors, idempotent.

Loader modules are imported at module level on purpose: if one is missing this file errors
instead of skipping.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from rvc_lab.audio import load_audio
from rvc_lab.files.generator_weights import build_synthesizer
from rvc_lab.files.hubert import load_content_encoder
from rvc_lab.files.index import build_ivf_flat_index, load_index, upstream_n_ivf
from rvc_lab.files.rmvpe import load_rmvpe, random_rmvpe_weights
from rvc_lab.files.synthetic import (
    DEMO_VOICES,
    STAMP,
    _sub_seed,
    random_synthesizer_weights,
    seeded_hubert_state,
    seeded_index_vectors,
    tone,
)
from rvc_lab.files.synthetic import (
    demo_assets as make_demo_assets,
)
from rvc_lab.files.voice import load_voice

POS_CONV = "pos_conv.weight"  # stored as weight-norm g/v in fp16: refolding moves it by ~1e-6


def tensor_digest(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous()
    return hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode() + t.numpy().tobytes()).hexdigest()


def digests(state: dict) -> dict:
    return {k: tensor_digest(v) for k, v in state.items()}


@pytest.fixture(scope="module")
def paths(demo_assets):
    return demo_assets_dict(demo_assets)


def demo_assets_dict(outdir):
    return make_demo_assets(outdir, seed=0)


@pytest.fixture(scope="module")
def loaded(paths):
    """Every demo asset read once by its real loader (loading HuBERT alone takes seconds)."""
    return {
        "hubert": load_content_encoder(paths["hubert"]),
        "rmvpe": load_rmvpe(paths["rmvpe"]),
        "voices": {v.name: load_voice(paths[v.name]) for v in DEMO_VOICES},
        "indexes": {v.name: load_index(paths[f"{v.name}_index"]) for v in DEMO_VOICES},
        "audio": {k: load_audio(paths[k]) for k in ("tone_16k", "tone_48k")},
    }


def test_every_asset_loads_with_the_real_loaders(paths, loaded):
    encoder = loaded["hubert"]
    x, sr = loaded["audio"]["tone_16k"]
    assert sr == 16000 and len(x) == 32000
    with torch.no_grad():
        v2 = encoder.extract_features(torch.from_numpy(x)[None], "v2")
        v1 = encoder.extract_features(torch.from_numpy(x)[None], "v1")
    frames = (32000 - 400) // 320 + 1
    assert v2.shape == (1, frames, 768) and v1.shape == (1, frames, 256)
    assert 0.5 < float(v2.std()) < 2.0  # the scale the index vectors are drawn at

    f0 = loaded["rmvpe"].infer_from_audio(x)
    assert f0.shape == (32000 // 160 + 1,) and np.isfinite(f0).all()

    for voice in DEMO_VOICES:
        vm = loaded["voices"][voice.name]
        assert (vm.version, vm.sr_tag, vm.if_f0, vm.feature_dim) == (voice.version, voice.sr_tag, voice.if_f0,
                                                                      voice.feature_dim)
        index = load_index(paths[f"{voice.name}_index"], expected_dim=vm.feature_dim)
        assert (index.ntotal, index.nlist, index.nprobe) == (voice.index_vectors, upstream_n_ivf(voice.index_vectors), 1)
        assert paths[f"{voice.name}_index"].name == (
            f"added_IVF{index.nlist}_Flat_nprobe_1_{voice.name}_{voice.version}.index")

        # the voice runs: 10 content frames (10 ms) -> 10 * samples_per_frame samples
        net = build_synthesizer(vm)
        feats = (v2 if voice.version == "v2" else v1)[:, :5].repeat_interleave(2, dim=1)
        pitchf = torch.full((1, 10), 200.0)
        pitch = torch.full((1, 10), 100, dtype=torch.long)
        with torch.no_grad():
            audio = net.infer(feats, torch.tensor([10]), pitch if voice.if_f0 else None,
                              pitchf if voice.if_f0 else None, torch.tensor([0]), noise=False)
        assert audio.shape == (1, 1, 10 * vm.samples_per_frame) and torch.isfinite(audio).all()

    y, sr48 = loaded["audio"]["tone_48k"]
    assert sr48 == 48000 and len(y) == 96000
    np.testing.assert_allclose(y, tone(48000), atol=1 / 32768)  # PCM16 of the analytic tone


def test_files_hold_exactly_the_seeded_tensors(loaded, tmp_path):
    """Generating again with the same seed gives the tensors the files hold, bit for bit.

    The files were written by one ``demo_assets`` run (possibly an earlier session); the
    generators run again here, so this is the same-seed-same-tensors check across runs.
    """
    encoder = loaded["hubert"].state_dict()
    expected = seeded_hubert_state(0)
    assert set(encoder) == set(expected)
    for key, value in expected.items():
        if key == POS_CONV:
            torch.testing.assert_close(encoder[key], value, rtol=1e-3, atol=1e-5)
        else:
            assert torch.equal(encoder[key], value), key

    rm = loaded["rmvpe"].net.state_dict()
    for key, value in random_rmvpe_weights(_sub_seed(0, "rmvpe")).items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(rm[key], value), key

    for voice in DEMO_VOICES:
        vm = loaded["voices"][voice.name]
        ref = random_synthesizer_weights(voice.version, voice.sr_tag, voice.if_f0, _sub_seed(0, voice.name),
                                         n_speakers=vm.n_speakers)
        assert digests({k: t.float() for k, t in vm.weights.items()}) == digests(ref), voice.name

        index = loaded["indexes"][voice.name]
        vectors = seeded_index_vectors(0, voice)
        assert vectors.std() == pytest.approx(voice.index_std, rel=0.02)
        perm = np.random.default_rng(_sub_seed(0, f"{voice.name}-shuffle")).permutation(len(vectors))
        np.testing.assert_array_equal(index.vectors, vectors[perm])
        # k-means is deterministic too: rebuilding gives the same centroids and lists
        again = load_index(build_ivf_flat_index(vectors, tmp_path / f"{voice.name}.index",
                                                shuffle_seed=_sub_seed(0, f"{voice.name}-shuffle")))
        assert tensor_digest(torch.from_numpy(again.centroids)) == tensor_digest(torch.from_numpy(index.centroids))
        assert all(np.array_equal(a, b) for a, b in zip(again.list_ids, index.list_ids))


def test_other_seed_gives_other_tensors():
    other, same0 = seeded_hubert_state(1), seeded_hubert_state(0)
    assert digests(other) != digests(same0)
    assert not torch.equal(other["layers.3.ffn_in.weight"], same0["layers.3.ffn_in.weight"])
    assert not np.array_equal(seeded_index_vectors(1, DEMO_VOICES[0]), seeded_index_vectors(0, DEMO_VOICES[0]))
    assert _sub_seed(1, "rmvpe") != _sub_seed(0, "rmvpe")


def test_demo_assets_is_idempotent(demo_assets):
    stamp = demo_assets / STAMP
    info = json.loads(stamp.read_text())
    assert info["seed"] == 0
    files = [demo_assets / rel for rel in info["files"].values()] + [stamp]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    paths = demo_assets_dict(demo_assets)
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes  # nothing rewritten
    assert set(paths.values()) == set(files) - {stamp}


def test_stamp_mismatch_triggers_regeneration(tmp_path, monkeypatch):
    """A stamp for another seed (or a missing file) is not trusted: generation runs again."""
    import rvc_lab.files.synthetic as synthetic

    calls = []
    monkeypatch.setattr(synthetic, "seeded_hubert", lambda seed: calls.append(seed) or (_ for _ in ()).throw(
        RuntimeError("stop after the stamp check")))
    out = tmp_path / "demo"
    out.mkdir()
    (out / STAMP).write_text(json.dumps({"seed": 1, "version": synthetic.DEMO_ASSETS_VERSION,
                                         "files": synthetic._relpaths()}))
    with pytest.raises(RuntimeError, match="stop after"):
        make_demo_assets(out, seed=0)
    assert calls == [0] and not (out / STAMP).exists()  # stale stamp removed before writing
