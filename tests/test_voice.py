"""Voice .pth files: the three parity voices, bad and hostile files, write/read round trip.

Truths: the parity manifest (config lists and every tensor's shape, written by the goldens'
generator, not by rvc_lab), and files built here to be wrong in one specific way each.
"""
from __future__ import annotations

import json
import math
import os
import pickle
from collections import OrderedDict

import pytest
import torch

from rvc_lab.errors import ModelFileError
from rvc_lab.files.generator_weights import build_synthesizer
from rvc_lab.files.parity_assets import VOICES
from rvc_lab.files.synthetic import random_synthesizer_weights
from rvc_lab.files.voice import load_voice, voice_config, write_voice
from rvc_lab.models.synth_spec import miniature_config


@pytest.mark.parity
@pytest.mark.parametrize("name", VOICES)
def test_parity_voice_summary(parity_files, parity_dir, name):
    manifest = json.loads((parity_dir / "manifest.json").read_text())
    path = parity_files.voice(name)
    rel = path.relative_to(parity_files.root).as_posix()  # the manifest's key: the path in upstream's layout
    stored = dict(manifest["files"][rel]["object"]["__odict__"])
    tensors = {t["key"]: t["shape"] for t in manifest["tensor_tables"][name]["tensors"]}

    voice = load_voice(path)
    s = voice.summary()
    assert s["version"] == stored["version"]
    assert s["sample_rate"] == stored["config"][-1] == int(stored["sr"][:-1]) * 1000
    assert s["sr_tag"] == stored["sr"]
    assert s["f0"] is bool(stored["f0"])
    assert s["speakers"] == tensors["emb_g.weight"][0]
    assert s["feature_dim"] == tensors["enc_p.emb_phone.weight"][1]
    assert s["parameters"] == sum(math.prod(shape) for shape in tensors.values())
    assert s["tensors"] == len(tensors)
    assert s["weights_dtype"] == "float16"
    assert s["samples_per_frame"] == stored["config"][-1] // 100
    assert s["info"].startswith("rvcref random weights")
    assert list(s["config"].values()) == stored["config"]  # 109 speakers stored = 109 emb_g rows here
    assert s["config"]["upsample_rates"] == stored["config"][12]
    json.dumps(s)  # plain data for `rvc-lab info --json`


# ---------------------------------------------------------------------------------------------
# files built here


@pytest.fixture(scope="module")
def small_voice(tmp_path_factory):
    """A valid v1 32k f0 voice with 2 speakers, written by write_voice (and its weights)."""
    weights = random_synthesizer_weights("v1", "32k", True, seed=21, n_speakers=2)
    path = tmp_path_factory.mktemp("voice") / "demo_v1_32k.pth"
    write_voice(path, weights, voice_config("v1", "32k"), "v1", "32k", True, info="round trip")
    return path, weights


@pytest.fixture(scope="module")
def mini_voice(tmp_path_factory):
    """A valid miniature v1 32k f0 voice file (standard strides, few channels; 2 speakers)."""
    config = miniature_config("v1", "32k", n_speakers=2)
    weights = random_synthesizer_weights("v1", "32k", True, seed=22, n_speakers=2, config=config)
    path = tmp_path_factory.mktemp("mini") / "mini_v1_32k.pth"
    return write_voice(path, weights, config, "v1", "32k", True, info="mini")


@pytest.fixture(scope="module")
def v1_cpt(mini_voice):
    return torch.load(mini_voice, weights_only=True)


def _expect_error(path, *words):
    with pytest.raises(ModelFileError) as info:
        load_voice(path)
    message = str(info.value)
    assert str(path) in message
    for w in words:
        assert w.lower() in message.lower(), message
    return message


def test_write_voice_round_trip(small_voice):
    path, weights = small_voice
    voice = load_voice(path)
    assert (voice.version, voice.tgt_sr, voice.if_f0, voice.n_speakers, voice.feature_dim) == ("v1", 32000, True, 2, 256)
    assert voice.info == "round trip"
    assert voice.weights.keys() == weights.keys()
    for k, t in weights.items():
        assert voice.weights[k].dtype == torch.float16
        assert torch.equal(voice.weights[k].float(), t), k
    expected_config = voice_config("v1", "32k")
    expected_config[15] = 2  # speaker count follows emb_g, as upstream's loaders do
    assert voice.config == expected_config
    # Container exactly as upstream's export writes it.
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["weight", "config", "info", "sr", "f0", "version"]
    assert (raw["sr"], raw["f0"], raw["version"], raw["config"][15]) == ("32k", 1, "v1", 109)


def test_write_voice_refuses_inconsistent_input(tmp_path):
    weights = random_synthesizer_weights("v2", "40k", False, seed=1, config=miniature_config("v2", "40k"))
    target = tmp_path / "bad.pth"
    with pytest.raises(ModelFileError, match="version"):
        write_voice(target, weights, miniature_config("v1", "40k"), "v1", "40k", False)
    assert not target.exists() and not list(tmp_path.iterdir()), "nothing may be left behind"


def test_missing_empty_and_truncated(tmp_path, mini_voice):
    _expect_error(tmp_path / "nope.pth", "not found")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    _expect_error(empty, "empty")
    _expect_error(tmp_path, "directory")
    data = open(mini_voice, "rb").read()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 3])
    _expect_error(truncated, "truncated or corrupt")
    garbage = tmp_path / "text.pth"
    garbage.write_text("not a model")
    _expect_error(garbage, "voice model")


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    zipped = tmp_path / "evil_zip.pth"
    torch.save({"weight": _RunsShell(marker), "config": []}, zipped)
    legacy = tmp_path / "evil_legacy.pth"
    with open(legacy, "wb") as fh:
        pickle.dump({"weight": _RunsShell(marker)}, fh, protocol=2)
    for path in (zipped, legacy):
        _expect_error(path, "refused", "nothing was executed")
    assert not marker.exists()


def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _variant(cpt, **changes):
    out = OrderedDict(cpt)
    for k, v in changes.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    return out


def test_structurally_wrong_files(tmp_path, v1_cpt):
    _expect_error(_save(tmp_path, "noweight.pth", _variant(v1_cpt, weight=None)), "lacks 'weight'")
    _expect_error(_save(tmp_path, "noconfig.pth", _variant(v1_cpt, config=None)), "lacks 'config'")
    _expect_error(_save(tmp_path, "list.pth", [1, 2, 3]), "not an RVC voice model", "list")
    _expect_error(_save(tmp_path, "bare.pth", dict(v1_cpt["weight"])), "bare state dict")
    train = {"model": dict(v1_cpt["weight"]), "iteration": 100, "optimizer": {"state": {}, "param_groups": []},
             "learning_rate": 1e-4}  # fmt: skip
    _expect_error(_save(tmp_path, "G_2333.pth", train), "training checkpoint", "G_*.pth", "not an exported voice")
    short = _variant(v1_cpt, config=v1_cpt["config"][:17])
    _expect_error(_save(tmp_path, "short.pth", short), "config has 17 items", "expected 18")
    typed = list(v1_cpt["config"])
    typed[12] = "10,4,2,2,2"
    _expect_error(_save(tmp_path, "typed.pth", _variant(v1_cpt, config=typed)), "item 12 (upsample_rates)")
    weights = dict(v1_cpt["weight"])
    del weights["dec.ups.1.weight_v"]
    _expect_error(_save(tmp_path, "missing_tensor.pth", _variant(v1_cpt, weight=weights)), "dec.ups.1.weight_v")
    weights = dict(v1_cpt["weight"])
    weights["dec.conv_pre.weight"] = torch.full_like(weights["dec.conv_pre.weight"], float("nan"))
    _expect_error(_save(tmp_path, "nan.pth", _variant(v1_cpt, weight=weights)), "dec.conv_pre.weight", "NaN")


def test_config_and_tags_that_contradict_the_weights(tmp_path, v1_cpt):
    # v2 tag on v1 (256-dim) weights.
    _expect_error(_save(tmp_path, "v2tag.pth", _variant(v1_cpt, version="v2")), "'v2'", "256", "does not match")
    # 40k config on 32k weights: 4 upsampling stages in the config, 5 in the weights.
    cfg40 = miniature_config("v1", "40k", n_speakers=2)
    _expect_error(_save(tmp_path, "cfg40.pth", _variant(v1_cpt, config=cfg40, sr="40k")), "5 upsampling layers",
                  "4 upsample rates")  # fmt: skip
    # sr tag against the config's rate.
    _expect_error(_save(tmp_path, "srtag.pth", _variant(v1_cpt, sr="48k")), "'sr' says 48k", "32000")
    # f0 flag against the presence of the NSF source.
    _expect_error(_save(tmp_path, "f0flag.pth", _variant(v1_cpt, f0=0)), "'f0' says 0", "dec.m_source")
    # A config whose kernel sizes differ from the stored tensors.
    cfg = list(v1_cpt["config"])
    cfg[14] = [20, 16, 4, 4, 4]
    _expect_error(_save(tmp_path, "kernels.pth", _variant(v1_cpt, config=cfg)), "dec.ups.0.weight_v", "[64, 32, 16]",
                  "[64, 32, 20]")  # fmt: skip
    # Upsample rates that do not give sr/100 samples per frame.
    cfg = list(v1_cpt["config"])
    cfg[12] = [10, 4, 2, 2, 3]
    _expect_error(_save(tmp_path, "rates.pth", _variant(v1_cpt, config=cfg)), "480 samples per 10 ms", "320")
    _expect_error(_save(tmp_path, "version.pth", _variant(v1_cpt, version="v3")), "unknown 'version'")


def test_defaults_and_newer_weight_norm_names(tmp_path, v1_cpt):
    """Old files without 'version'/'f0' read as v1 f0 (upstream's defaults); parametrization keys load."""
    old = _variant(v1_cpt, version=None, f0=None)
    voice = load_voice(_save(tmp_path, "old.pth", old))
    assert (voice.version, voice.if_f0) == ("v1", True)
    renamed = {
        k.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1"
        ): t
        for k, t in v1_cpt["weight"].items()
    }
    renamed["enc_q.pre.weight"] = torch.zeros(16, 513, 1, dtype=torch.float16)  # training-only, ignored
    voice = load_voice(_save(tmp_path, "param.pth", _variant(v1_cpt, weight=renamed)))
    reference = build_synthesizer(load_voice(_save(tmp_path, "plain.pth", v1_cpt)))
    synth = build_synthesizer(voice)
    for k, t in reference.state_dict().items():
        assert torch.equal(synth.state_dict()[k], t), k
