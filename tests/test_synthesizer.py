"""RVC generator (net_g): upstream parity, all four variants, noise semantics, NSF sine, attention.

Truths used: upstream's own outputs on the seeded parity voice (``netg_rvcref_v2_40k_f0``), the
torch generator state after upstream's documented draws, an analytic sine for the NSF source, and
a direct per-offset formula for the relative-position attention.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rvc_lab.errors import SettingsError
from rvc_lab.files.generator_weights import build_synthesizer
from rvc_lab.files.synthetic import random_synthesizer_weights
from rvc_lab.files.voice import load_voice, parse_voice, voice_config
from rvc_lab.models.nsf import harmonic_excitation
from rvc_lab.models.synth_spec import miniature_config
from rvc_lab.models.vits_layers import RelativeSelfAttention
from tests.conftest import load_case, rel_l2
from tests.tolerances import UPSTREAM_REL_L2

CASE = "netg_rvcref_v2_40k_f0"
PARITY_VOICES = {
    "rvcref_v2_40k_f0": ("v2", 40000, True),
    "rvcref_v1_48k_f0": ("v1", 48000, True),
    "rvcref_v2_32k_nof0": ("v2", 32000, False),
}


def _zeros_draw(shape):
    return torch.zeros(shape)


@pytest.fixture(scope="module")
def netg_case(parity_dir):
    return load_case(parity_dir, CASE)


@pytest.fixture(scope="module")
def parity_synth(parity_files):
    return build_synthesizer(load_voice(parity_files.voice("rvcref_v2_40k_f0")))


def _variant_ids():
    # The case lists 4 variants x {zero, seeded}; read lazily in the test to keep collection cheap.
    return [(v, n) for v in ("full", "skip40_len50", "skip10_len60_norl2", "skip40_len50_rl2_63") for n in ("zero", "seeded")]


@pytest.mark.parity
@pytest.mark.parametrize("variant,noise", _variant_ids())
def test_netg_parity(parity_synth, netg_case, variant, noise, record_property):
    meta, arrays = netg_case
    (params,) = [v for v in meta["params"]["variants"] if v["variant"] == variant and v["noise"] == noise]
    phone = torch.from_numpy(arrays["phone"])
    pitch = torch.from_numpy(arrays["pitch"])
    pitchf = torch.from_numpy(arrays["pitchf"])
    if noise == "seeded":
        torch.manual_seed(params["torch_manual_seed"])
    out = parity_synth.infer(
        phone, torch.tensor([phone.shape[1]]), pitch, pitchf, torch.tensor([meta["params"]["sid"]]),
        skip_head=params["skip_head"], return_length=params["return_length"],
        return_length2=params["return_length2"], noise=noise == "seeded",
    )  # fmt: skip
    golden = arrays[params["output"]]
    assert out.shape == (1, 1, params["output_samples"])
    err = rel_l2(out[0, 0].numpy(), golden)
    record_property("rel_l2", err)
    print(f"{CASE} {variant} {noise}: rel L2 {err:.3e}")
    assert err <= 1e-4


@pytest.mark.parity
def test_netg_intermediates_and_draws(parity_synth, netg_case):
    """Prior statistics match upstream's, and seeded draws are upstream's stored tensors."""
    meta, arrays = netg_case
    phone = torch.from_numpy(arrays["phone"])
    with torch.no_grad():
        mean, log_scale, _ = parity_synth.enc_p(phone, torch.from_numpy(arrays["pitch"]), torch.tensor([120]))
    assert rel_l2(mean[0].numpy(), arrays["full__zero__m_p"]) <= UPSTREAM_REL_L2
    assert rel_l2(log_scale[0].numpy(), arrays["full__zero__logs_p"]) <= UPSTREAM_REL_L2
    # The stored draws are what torch's generator yields for upstream's order and shapes.
    (params,) = [v for v in meta["params"]["variants"] if v["variant"] == "skip40_len50" and v["noise"] == "seeded"]
    torch.manual_seed(params["torch_manual_seed"])
    for d in params["draws"]:
        drawn = torch.randn(d["shape"]) if d["fn"] == "randn_like" else torch.rand(d["shape"])
        np.testing.assert_array_equal(drawn.numpy(), arrays[d["array"]])


@pytest.mark.parity
@pytest.mark.parametrize("name", sorted(PARITY_VOICES))
def test_parity_voices_build_and_infer(parity_files, name):
    version, sr, if_f0 = PARITY_VOICES[name]
    voice = load_voice(parity_files.voice(name))
    synth = build_synthesizer(voice)
    assert (synth.spec.version, synth.tgt_sr, synth.if_f0, synth.upp) == (version, sr, if_f0, sr // 100)
    assert not synth.training and all(p.dtype == torch.float32 for p in synth.parameters())
    frames = 20
    gen = torch.Generator().manual_seed(0)
    phone = torch.randn(1, frames, voice.feature_dim, generator=gen)
    pitchf = torch.full((1, frames), 180.0)
    pitch = torch.full((1, frames), 80, dtype=torch.long)
    out = synth.infer(phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([0]), noise=False)
    assert out.shape == (1, 1, frames * sr // 100)
    assert torch.isfinite(out).all() and 1e-4 < out.abs().max() <= 1.0
    # Windowed call: only return_length frames come out.
    out = synth.infer(phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([0]), 15, 4, None, noise=False)
    assert out.shape == (1, 1, 4 * sr // 100)


VARIANTS = [("v1", "40k", True), ("v1", "32k", False), ("v2", "48k", True), ("v2", "40k", False)]


def _random_voice(version, sr_tag, if_f0, config=None, n_speakers=2):
    weights = random_synthesizer_weights(version, sr_tag, if_f0, seed=11, n_speakers=n_speakers, config=config)
    cpt = {"weight": weights, "config": config or voice_config(version, sr_tag), "info": "", "sr": sr_tag,
           "f0": int(if_f0), "version": version}  # fmt: skip
    return parse_voice(f"<random {version} {sr_tag}>", cpt)


@pytest.fixture(scope="module")
def mini_synths():
    """Miniature generators (standard strides, few channels) of all four classes: fast semantics tests."""
    return {
        (v, sr, f0): build_synthesizer(_random_voice(v, sr, f0, config=miniature_config(v, sr, 2)))
        for v, sr, f0 in VARIANTS
    }


@pytest.mark.parametrize("version,sr_tag,if_f0", VARIANTS)
def test_standard_generators_build_and_run(version, sr_tag, if_f0):
    """Full-size random voices of the four upstream classes build and give audio of T*upp samples."""
    voice = _random_voice(version, sr_tag, if_f0)
    synth = build_synthesizer(voice)
    assert sum(p.numel() for p in synth.parameters()) > 27_000_000
    frames = 8
    phone = torch.randn(1, frames, voice.feature_dim, generator=torch.Generator().manual_seed(1))
    pitch = torch.full((1, frames), 60, dtype=torch.long)
    out = synth.infer(phone, torch.tensor([frames]), pitch, torch.full((1, frames), 140.0), torch.tensor([1]),
                      noise=False)  # fmt: skip
    assert out.shape == (1, 1, frames * voice.tgt_sr // 100)
    assert torch.isfinite(out).all() and out.abs().max() > 1e-4


def test_generator_call_semantics(mini_synths):
    frames = 30
    for (version, sr_tag, if_f0), synth in mini_synths.items():
        phone = torch.randn(1, frames, synth.spec.feature_dim, generator=torch.Generator().manual_seed(1))
        pitch = torch.full((1, frames), 60, dtype=torch.long) if if_f0 else None
        pitchf = torch.full((1, frames), 140.0) if if_f0 else None
        a = synth.infer(phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([1]), noise=False)
        b = synth.infer(phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([1]), noise=False)
        assert a.shape == (1, 1, frames * synth.tgt_sr // 100), (version, sr_tag)
        assert torch.isfinite(a).all() and a.abs().max() > 1e-5
        assert torch.equal(a, b), "noise=False must be deterministic"
        # Speakers differ, and a no-f0 model ignores pitch arguments.
        c = synth.infer(phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([0]), noise=False)
        assert not torch.equal(a, c)
        if not if_f0:
            d = synth.infer(phone, torch.tensor([frames]), torch.full((1, frames), 9), torch.full((1, frames), 99.0),
                            torch.tensor([1]), noise=False)  # fmt: skip
            assert torch.equal(a, d)
        # Windowed: return_length frames; return_length2 stretches to that many; rl alone changes nothing.
        e = synth.infer(phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([1]), 12, 10, None, noise=False)
        assert e.shape == (1, 1, 10 * synth.upp)
        f = synth.infer(phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([1]), 12, 10, 13, noise=False)
        assert f.shape == (1, 1, 13 * synth.upp)
        g = synth.infer(phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([1]), None, 10, None, noise=False)
        assert torch.equal(g, a)
        with pytest.raises(SettingsError, match="speaker id"):
            synth.infer(phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([2]))
        if if_f0:
            with pytest.raises(SettingsError, match="pitch"):
                synth.infer(phone, torch.tensor([frames]), None, None, torch.tensor([0]))


def test_noise_draw_order(mini_synths):
    """noise=True consumes exactly upstream's three draws; noise=False consumes none."""
    frames, skip, length = 50, 30, 12
    for (version, _, if_f0), synth in mini_synths.items():
        phone = torch.randn(1, frames, synth.spec.feature_dim)
        pitch = torch.full((1, frames), 70, dtype=torch.long)
        pitchf = torch.full((1, frames), 150.0)
        args = (phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([0]), skip, length, None)

        torch.manual_seed(5)
        synth.infer(*args, noise=True)
        after_call = torch.rand(4)
        torch.manual_seed(5)
        torch.randn(1, synth.spec.inter_channels, frames - (skip - 24))  # prior noise over the flow window
        if if_f0:
            torch.rand(1, 1)  # sine phase
            torch.randn(1, length * synth.upp, 1)  # excitation noise
        assert torch.equal(after_call, torch.rand(4)), (version, if_f0)

        torch.manual_seed(6)
        z0 = synth.infer(*args, noise=False)
        after_call = torch.rand(4)
        torch.manual_seed(6)
        assert torch.equal(after_call, torch.rand(4))
        assert not torch.equal(z0, synth.infer(*args, noise=True))


def test_nsf_sine_matches_analytic_tone():
    """Zero-noise excitation = 0.1 sin(2 pi f (n+1) / sr) in voiced frames, 0 in unvoiced ones."""
    sr, upp, frames, f0_hz = 40000, 400, 50, 220.0
    f0 = torch.full((1, frames), f0_hz)
    f0[0, 30:35] = 0.0
    exc = harmonic_excitation(f0, upp, sr, _zeros_draw, _zeros_draw)[0, :, 0].double().numpy()
    n = np.arange(frames * upp)
    expected = 0.1 * np.sin(2 * np.pi * f0_hz * (n + 1) / sr)
    voiced = np.repeat(f0[0].numpy() > 0, upp)
    assert np.abs(exc[voiced][: 30 * upp] - expected[: 30 * upp]).max() < 1e-4
    assert np.all(exc[~voiced] == 0.0)


def test_relative_attention_matches_direct_formula():
    """Band implementation vs a per-offset loop of the relative-position attention definition."""
    torch.manual_seed(0)
    channels, heads, window = 8, 2, 10
    attn = RelativeSelfAttention(channels, heads, window)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.5)
    d = channels // heads
    for length in (6, 37):  # shorter and longer than the window
        x = torch.randn(1, channels, length)
        mask = torch.ones(1, 1, length, length)
        mask[..., length - 2 :] = 0  # last two frames are padding keys
        with torch.no_grad():
            got = attn(x, mask)[0].double().numpy()
            q = attn.conv_q(x)[0].view(heads, d, length).double().numpy() / math.sqrt(d)
            k = attn.conv_k(x)[0].view(heads, d, length).double().numpy()
            v = attn.conv_v(x)[0].view(heads, d, length).double().numpy()
            ek = attn.emb_rel_k[0].double().numpy()
            ev = attn.emb_rel_v[0].double().numpy()
            out = np.zeros((heads, d, length))
            for h in range(heads):
                for i in range(length):
                    logits = np.array([
                        q[h, :, i] @ k[h, :, j] + (q[h, :, i] @ ek[j - i + window] if abs(j - i) <= window else 0.0)
                        for j in range(length)
                    ])  # fmt: skip
                    logits[mask[0, 0, i].numpy() == 0] = -1e4
                    p = np.exp(logits - logits.max())
                    p /= p.sum()
                    for j in range(length):
                        out[h, :, i] += p[j] * v[h, :, j]
                        if abs(j - i) <= window:
                            out[h, :, i] += p[j] * ev[j - i + window]
            w_o = attn.conv_o.weight[:, :, 0].double().numpy()
            expected = w_o @ out.reshape(channels, length) + attn.conv_o.bias.double().numpy()[:, None]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_random_weights_deterministic_and_fp16_exact():
    mini = miniature_config("v1", "32k")
    a = random_synthesizer_weights("v1", "32k", True, seed=4, config=mini)
    b = random_synthesizer_weights("v1", "32k", True, seed=4, config=mini)
    c = random_synthesizer_weights("v1", "32k", True, seed=5, config=mini)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["dec.conv_pre.weight"], c["dec.conv_pre.weight"])
    for t in a.values():
        assert t.dtype == torch.float32 and torch.equal(t.half().float(), t)
    # PyTorch default scale: U(+-1/sqrt(fan_in)), fan_in = 16 latent channels x kernel 7 for conv_pre.
    w = a["dec.conv_pre.weight"]
    bound = 1 / math.sqrt(16 * 7)
    assert w.abs().max() <= bound * 1.001 and abs(w.std().item() - bound / math.sqrt(3)) < 0.03 * bound
    assert abs(a["enc_p.emb_pitch.weight"].std().item() - 1.0) < 0.05  # embeddings N(0, 1)
    assert a["emb_g.weight"].shape == (1, 16)
    # Weight-norm gains: ||v|| x U(0.9, 1.1) per output channel.
    g, v = a["dec.ups.0.weight_g"], a["dec.ups.0.weight_v"]
    ratio = g.flatten() / v.flatten(1).norm(dim=1)
    assert ratio.min() > 0.89 and ratio.max() < 1.11
