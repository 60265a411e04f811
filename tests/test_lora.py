"""LoRA adapters: file format, validation against a voice, run-time application, merge, CLI.

Truths used: the generator with the adapter applied unmerged at run time (the low-rank path
computed layer by layer, never forming the delta) for the merged generator; the definition of a
(transposed) convolution written out as loops in numpy for the layout of the delta; einsum
over the documented factor axes for the delta itself; fp16's round-to-nearest for the file.
All on a miniature generator (standard strides, few channels): the whole module runs in seconds.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rvc_lab.cli import main
from rvc_lab.errors import ModelFileError
from rvc_lab.files.generator_weights import build_synthesizer
from rvc_lab.files.lora import (
    FORMAT,
    adaptable_layers,
    check_adapter_fits,
    default_ranks,
    folded_layer_weight,
    load_adapter,
    random_adapter_layers,
    write_adapter,
    write_random_adapter,
)
from rvc_lab.files.synthetic import random_synthesizer_weights
from rvc_lab.files.voice import load_voice, parse_voice, write_voice
from rvc_lab.lora import adapted_synthesizer, merge_voice_file, merged_weights
from rvc_lab.models.lora import LayerAdapter, LoRAAdapted, factor_shapes, lora_delta
from rvc_lab.models.synth_spec import miniature_config, standard_config
from tests.conftest import rel_l2

#: fp16 has 10 stored mantissa bits: round-to-nearest is off by at most half an ulp, i.e.
#: 2**-11 of the value in the normal range (|x| >= 2**-14) and 2**-25 below it (subnormals).
FP16_HALF_ULP_REL = 2.0**-11
FP16_SMALLEST_NORMAL = 2.0**-14


def _write_mini_voice(path, version="v2", sr_tag="40k", if_f0=True, seed=5):
    config = miniature_config(version, sr_tag)
    weights = random_synthesizer_weights(version, sr_tag, if_f0, seed=seed, config=config)
    return write_voice(path, weights, config, version, sr_tag, if_f0, info="mini")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A miniature v2 40k f0 voice, its seeded random adapter (rank 8), and both parsed."""
    d = tmp_path_factory.mktemp("lora")
    voice_path = _write_mini_voice(d / "voice.pth")
    voice = load_voice(voice_path)
    adapter_path = write_random_adapter(d / "adapter.pt", voice, rank=8, seed=3, strength=0.1)
    return SimpleNamespace(dir=d, voice_path=voice_path, voice=voice, adapter_path=adapter_path,
                           adapter=load_adapter(adapter_path))  # fmt: skip


def _inputs(voice, frames=24):
    gen = torch.Generator().manual_seed(7)
    phone = torch.randn(1, frames, voice.feature_dim, generator=gen)
    pitchf = 150.0 + 60.0 * torch.rand(1, frames, generator=gen)
    pitch = torch.full((1, frames), 70, dtype=torch.long)
    return phone, torch.tensor([frames]), pitch, pitchf, torch.tensor([0])


def _run(synth, voice):
    return synth.infer(*_inputs(voice), noise=False)[0, 0].numpy()


def _voice_from_weights(voice, weights):
    cpt = {"weight": weights, "config": voice.config, "info": "", "sr": "40k", "f0": int(voice.if_f0),
           "version": voice.version}  # fmt: skip
    return parse_voice("<merged fp32>", cpt)


@pytest.fixture(scope="module")
def audio(files):
    """Audio of the base voice, the run-time adapter and the fp32 merge (same inputs, no noise)."""
    voice, adapter = files.voice, files.adapter
    runtime = adapted_synthesizer(voice, adapter)
    assert sum(isinstance(m, LoRAAdapted) for m in runtime.modules()) == len(adapter.layers)
    merged = build_synthesizer(_voice_from_weights(voice, merged_weights(voice, adapter)))
    return SimpleNamespace(base=_run(build_synthesizer(voice), voice), runtime=_run(runtime, voice),
                           merged32=_run(merged, voice))  # fmt: skip


# ---------------------------------------------------------------------------- merge == run time
def test_merged_generator_equals_runtime_adapter(audio):
    """fp32 merge vs the unmerged adapter at run time: same audio to float32 rounding."""
    err = rel_l2(audio.merged32, audio.runtime)
    change = rel_l2(audio.base, audio.runtime)
    print(f"merged fp32 vs run-time adapter: rel L2 {err:.2e}; adapter changes the audio by rel L2 {change:.2f}")
    # measured 1.9e-7 (float32 rounding of two orders of summation); the adapter itself moves the
    # audio by 3e-2, so a dropped delta fails the second assert by a wide margin
    assert err <= 1e-5
    assert change > 0.01, "the adapter must change the output, or the comparison above proves nothing"


def test_merge_adds_exactly_the_delta(files):
    """Every adapted layer's folded weight moves by alpha/r * (factor product), nothing else moves."""
    voice, adapter = files.voice, files.adapter
    merged = merged_weights(voice, adapter)
    kinds = adaptable_layers(voice)
    assert set(adapter.layers) == set(default_ranks(voice, 8))
    for name, layer in adapter.layers.items():
        kind, shape = kinds[name]
        a, b, s = layer.lora_A.double(), layer.lora_B.double(), layer.alpha / layer.r
        if kind == "conv_transpose1d":  # weight [in, out, k]; A [in, r], B [r, out*k]
            expected = s * torch.einsum("ir,rok->iok", a, b.reshape(layer.r, shape[1], shape[2]))
        else:  # conv1d: weight [out, in, k]; A [r, in*k], B [out, r]
            expected = s * torch.einsum("or,rik->oik", b, a.reshape(layer.r, shape[1], shape[2]))
        moved = folded_layer_weight(merged, name).double() - folded_layer_weight(voice.weights, name).double()
        assert rel_l2(moved.numpy(), expected.numpy()) <= 1e-5, name
        strength = float(expected.norm() / folded_layer_weight(voice.weights, name).double().norm())
        assert strength == pytest.approx(0.1, rel=1e-3), name
    touched = {k for name in adapter.layers for k in merged if k.startswith(name + ".weight")}
    for key, t in voice.weights.items():
        if key not in touched:
            assert torch.equal(merged[key], t.float()), f"{key} is not adapted and must not change"


# ---------------------------------------------------------------------------- layout, by hand
def _conv_transpose_by_definition(x, weight, bias, stride, padding):
    """y[o, m*stride + t - padding] += x[i, m] * weight[i, o, t]: the transposed convolution, as loops."""
    c_in, length = x.shape
    _, c_out, k = weight.shape
    n_out = (length - 1) * stride - 2 * padding + k
    y = np.tile(bias[:, None], (1, n_out)).astype(np.float64)
    for i in range(c_in):
        for m in range(length):
            for t in range(k):
                n = m * stride + t - padding
                if 0 <= n < n_out:
                    y[:, n] += x[i, m] * weight[i, :, t]
    return y


def test_conv_transpose_delta_layout_by_hand():
    """ConvTranspose1d weights are [in, out, k]: the merge layout is checked against the definition."""
    c_in, c_out, k, stride, padding, r, alpha = 2, 3, 4, 2, 1, 1, 2.0
    gen = torch.Generator().manual_seed(0)
    layer = nn.ConvTranspose1d(c_in, c_out, k, stride, padding=padding).double()
    a = torch.tensor([[1.0], [-2.0]], dtype=torch.float64)  # [in, r]
    b = torch.arange(1.0, c_out * k + 1, dtype=torch.float64).reshape(r, c_out * k) / 10  # [r, out*k]
    adapter = LayerAdapter(a, b, alpha, r)
    x = torch.randn(1, c_in, 5, generator=gen, dtype=torch.float64)

    # Hand-written delta: dW[i, o, t] = alpha/r * A[i, 0] * B[0, o*k + t]
    delta = np.zeros((c_in, c_out, k))
    for i in range(c_in):
        for o in range(c_out):
            for t in range(k):
                delta[i, o, t] = alpha / r * a[i, 0].item() * b[0, o * k + t].item()
    w = layer.weight.detach().numpy()
    bias = layer.bias.detach().numpy()
    truth = _conv_transpose_by_definition(x[0].numpy(), w + delta, bias, stride, padding)

    np.testing.assert_allclose(lora_delta("conv_transpose1d", tuple(w.shape), adapter).numpy(), delta, rtol=1e-12)
    runtime = LoRAAdapted(layer, adapter)(x)[0].detach().numpy()
    assert rel_l2(runtime, truth) <= 1e-12
    merged = F.conv_transpose1d(x, layer.weight + lora_delta("conv_transpose1d", tuple(w.shape), adapter),
                                layer.bias, stride, padding)[0].detach().numpy()  # fmt: skip
    assert rel_l2(merged, truth) <= 1e-12
    # The public RVC LoRA merge forms the delta in the Conv1d orientation [out, in*k] and views
    # that memory as [in, out, k]: for in != out the entries land on the wrong taps and channels.
    wrong = torch.from_numpy(delta).permute(1, 0, 2).contiguous().view(c_in, c_out, k)
    scrambled = F.conv_transpose1d(x, layer.weight + wrong, layer.bias, stride, padding)[0].detach().numpy()
    assert rel_l2(scrambled, truth) > 0.1, "a wrong-layout merge must be visible in the output"


def test_conv1d_delta_layout_by_hand():
    """Conv1d [out, in, k] with dilation and padding: run time and merge against the definition."""
    c_in, c_out, k, dilation, padding, r, alpha = 3, 2, 3, 2, 2, 2, 3.0
    gen = torch.Generator().manual_seed(1)
    layer = nn.Conv1d(c_in, c_out, k, dilation=dilation, padding=padding).double()
    a = torch.randn(r, c_in * k, generator=gen, dtype=torch.float64)
    b = torch.randn(c_out, r, generator=gen, dtype=torch.float64)
    adapter = LayerAdapter(a, b, alpha, r)
    x = torch.randn(1, c_in, 9, generator=gen, dtype=torch.float64)[0].numpy()
    w = layer.weight.detach().numpy() + alpha / r * np.einsum("or,rik->oik", b.numpy(), a.numpy().reshape(r, c_in, k))
    xp = np.pad(x, ((0, 0), (padding, padding)))
    n_out = xp.shape[1] - dilation * (k - 1)
    truth = np.array([[layer.bias[o].item() + sum(w[o, i, t] * xp[i, n + dilation * t] for i in range(c_in)
                                                   for t in range(k)) for n in range(n_out)] for o in range(c_out)])  # fmt: skip
    runtime = LoRAAdapted(layer, adapter)(torch.from_numpy(x)[None])[0].detach().numpy()
    assert rel_l2(runtime, truth) <= 1e-12
    merged = F.conv1d(torch.from_numpy(x)[None], layer.weight + lora_delta("conv1d", tuple(w.shape), adapter),
                      layer.bias, dilation=dilation, padding=padding)[0].detach().numpy()  # fmt: skip
    assert rel_l2(merged, truth) <= 1e-12


# ---------------------------------------------------------------------------- the written file
def test_written_voice_is_fp16_rounding_of_fp32_merge(files, audio):
    out = files.dir / "merged.pth"
    result = merge_voice_file(files.voice_path, files.adapter_path, out)
    raw_in = torch.load(files.voice_path, weights_only=True)
    raw = torch.load(out, weights_only=True)
    assert list(raw) == list(raw_in), "same dict layout as the input voice"
    assert all(raw[k] == raw_in[k] for k in raw if k != "weight")
    assert list(raw["weight"]) == list(raw_in["weight"])

    merged32 = merged_weights(files.voice, files.adapter)
    worst = 0.0
    for key, w16 in raw["weight"].items():
        w32 = merged32[key]
        assert w16.dtype == torch.float16, key
        assert torch.equal(w16, w32.to(torch.float16)), f"{key}: not round-to-nearest of the fp32 merge"
        err = (w16.double() - w32.double()).abs()
        bound = FP16_HALF_ULP_REL * w32.double().abs().clamp(min=FP16_SMALLEST_NORMAL)
        assert bool((err <= bound).all()), f"{key}: more than half an fp16 ulp from the fp32 merge"
        normal = w32.abs() >= FP16_SMALLEST_NORMAL
        if bool(normal.any()):
            worst = max(worst, float((err[normal] / w32.double().abs()[normal]).max()))
    # measured 4.87e-4, just under 2**-11 = 4.88e-4: some weight among the ~1e4 merged ones sits
    # almost exactly halfway between two fp16 values
    print(f"largest relative fp16 rounding of a merged weight: {worst:.3e} (bound 2**-11 = {2**-11:.3e}); "
          f"largest absolute {result['max_rounding']:.2e}")
    assert worst <= FP16_HALF_ULP_REL

    # The file is a voice every loader takes; its audio is the fp32 merge's up to fp16 rounding.
    merged16 = load_voice(out)
    audio16 = _run(build_synthesizer(merged16), merged16)
    err = rel_l2(audio16, audio.merged32)
    print(f"audio of the fp16 file vs the fp32 merge: rel L2 {err:.2e}")
    assert err <= 1e-3  # measured 5e-5: fp16 rounding of the weights only (an empirical 20x margin)


def test_cli_random_then_merge(files):
    folder = files.dir / "cli"
    adapter, out = folder / "adapter.pt", folder / "merged.pth"
    assert main(["lora", "random", str(files.voice_path), "-o", str(adapter), "--rank", "4", "--seed", "9"]) == 0
    assert {layer.r for layer in load_adapter(adapter).layers.values()} == {4}
    assert main(["lora", "merge", str(files.voice_path), str(adapter), "-o", str(out)]) == 0
    merged = load_voice(out)
    assert not torch.equal(merged.weights["dec.ups.0.weight_v"], files.voice.weights["dec.ups.0.weight_v"])
    assert torch.equal(merged.weights["enc_p.proj.weight"], files.voice.weights["enc_p.proj.weight"])
    assert sorted(p.name for p in folder.iterdir()) == ["adapter.pt", "merged.pth"], "no temporary left behind"


# ---------------------------------------------------------------------------- the random writer
def test_random_adapter_is_seeded_and_not_a_no_op(files):
    again = random_adapter_layers(files.voice, rank=8, seed=3, strength=0.1)
    other = random_adapter_layers(files.voice, rank=8, seed=4, strength=0.1)
    for name, layer in files.adapter.layers.items():
        assert torch.equal(again[name].lora_A, layer.lora_A) and torch.equal(again[name].lora_B, layer.lora_B)
        assert not torch.equal(other[name].lora_B, layer.lora_B)
        assert float(layer.lora_B.abs().max()) > 0, "B must not be zero in a test adapter"
        assert layer.r == (8 if name.startswith("dec.ups.") else 4) and layer.alpha == 2 * layer.r


def test_standard_voice_rank8_parameter_count():
    """Rank 8 (upsampling) / 4 (residual blocks) on a standard v2 40k voice: 336,384 parameters.

    The public project reports 342,912 for its own factor shapes at rank 8; this format's
    transposed-convolution factors ([in, r] and [r, out*k]) are smaller than its [r, in*k] and
    [out, r], the residual-block factors are the same.
    """
    voice = SimpleNamespace(config=standard_config("v2", "40k"), version="v2", if_f0=True, n_speakers=1)
    kinds = adaptable_layers(voice)
    count = sum(math.prod(s) for name, r in default_ranks(voice, 8).items()
                for s in factor_shapes(*kinds[name], r))  # fmt: skip
    assert count == 336_384


# ---------------------------------------------------------------------------- refusals
def _merge_refused(files, adapter_path, *words, voice_path=None):
    out = files.dir / "refused" / "merged.pth"
    with pytest.raises(ModelFileError) as info:
        merge_voice_file(voice_path or files.voice_path, adapter_path, out)
    message = str(info.value)
    for w in words:
        assert w in message, message
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir())), "nothing written"
    return message


def test_adapter_of_another_sample_rate_names_the_first_layer(files):
    other = load_voice(_write_mini_voice(files.dir / "v2_48k.pth", "v2", "48k"))
    path = write_random_adapter(files.dir / "adapter_48k.pt", other, rank=8, seed=1)
    # the adapter's lora_B is [r, out*k] = [8, 32*24] for 24 taps; the voice's layer has 16
    _merge_refused(files, path, "layer dec.ups.0 ", "weight [64, 32, 16]", "lora_B [8, 768]", "lora_B [8, 512]",
                   "48000 Hz", "40000 Hz")  # fmt: skip


def test_adapter_of_another_version_is_refused(files):
    """v1 and v2 40k decoders have the same shapes: the target tags must catch it."""
    other = load_voice(_write_mini_voice(files.dir / "v1_40k.pth", "v1", "40k"))
    path = write_random_adapter(files.dir / "adapter_v1.pt", other, rank=8, seed=1)
    _merge_refused(files, path, "v1 40000 Hz f0", "v2 40000 Hz f0")


def test_adapter_for_missing_layers_and_wrong_rank(files):
    layers = dict(files.adapter.layers)
    layers["dec.resblocks.99.convs1.0"] = layers["dec.resblocks.0.convs1.0"]
    path = write_adapter(files.dir / "extra.pt", files.adapter.target, layers)
    _merge_refused(files, path, "layer dec.resblocks.99.convs1.0: the voice has no such")
    bad = files.adapter.layers["dec.ups.1"]
    layers = {"dec.ups.1": LayerAdapter(bad.lora_A, bad.lora_B, bad.alpha, bad.r * 2)}
    path = write_adapter(files.dir / "rank.pt", files.adapter.target, layers)
    _merge_refused(files, path, "layer dec.ups.1 (conv_transpose1d", "rank 16")


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_missing_files_and_code_in_the_adapter(files, capsys):
    _merge_refused(files, files.dir / "nope.pt", "LoRA adapter not found")
    _merge_refused(files, files.adapter_path, "voice model not found", voice_path=files.dir / "nope.pth")
    evil = files.dir / "evil.pt"
    torch.save({"format": FORMAT, "layers": _Payload()}, evil)
    _merge_refused(files, evil, "refused", "nothing was executed")
    assert "must never run" not in capsys.readouterr().out
    not_adapter = files.voice_path  # a voice is not an adapter
    _merge_refused(files, not_adapter, "not an rvc_lab LoRA adapter")


def test_cli_refuses_before_writing(files, capsys):
    other = load_voice(_write_mini_voice(files.dir / "cli_48k.pth", "v2", "48k"))
    path = write_random_adapter(files.dir / "cli_48k.pt", other, rank=4, seed=2)
    out = files.dir / "cli_refused" / "merged.pth"
    assert main(["lora", "merge", str(files.voice_path), str(path), "-o", str(out)]) == 2
    assert "dec.ups.0" in capsys.readouterr().err
    assert not out.exists()


def test_check_against_the_voice_it_was_made_for(files):
    check_adapter_fits(files.adapter, files.voice)  # no error
