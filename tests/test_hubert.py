"""HuBERT content encoder: upstream goldens, two independent implementations, file safety.

Truths used:
* the upstream parity goldens ``hubert_synth`` / ``hubert_speech`` (transformers' HubertModel run by
  upstream RVC on the seeded random-weight assets), from both file layouts;
* transformers' ``HubertModel`` (eager attention) on the same HF directory, layer by layer;
* fairseq's own checkpoint loader and ``HubertModel.extract_features`` on the same fairseq file,
  the way classic RVC calls it (only when fairseq imports: the ``fairseq`` extra);
* hostile and broken files must raise ``ModelFileError`` and run nothing.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from rvc_lab.errors import InvalidAudioError, ModelFileError
from rvc_lab.files.hubert import load_content_encoder, write_fairseq_checkpoint, write_hf_directory
from rvc_lab.models.hubert import HubertBase, HubertConfig
from tests.conftest import REPO, load_case, rel_l2

CASES = ("hubert_synth", "hubert_speech")

# A small model with HuBERT base's conv geometry (same frame formula) and 9 layers (v1 works).
TINY = HubertConfig(
    conv_layers=((32, 10, 5),) + ((32, 3, 2),) * 4 + ((32, 2, 2),) * 2,
    embed_dim=64, ffn_dim=128, num_heads=4, num_layers=9, pos_conv_kernel=16, pos_conv_groups=4, final_dim=16,
)


def _tiny_model(seed: int = 0) -> HubertBase:
    torch.manual_seed(seed)
    model = HubertBase(TINY)
    with torch.no_grad():  # perturb the norms so that a swapped or missing one shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.empty_like(p).uniform_(-0.1, 0.1))
    return model


def _noise(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(1, n, generator=g)


# -- shared heavy objects (module scope: each loaded once) ---------------------------------------


@pytest.fixture(scope="module")
def goldens(parity_dir):
    """{case: (input [1, N] float32 tensor, {"v1": [T,256], "v2": [T,768]})}."""
    out = {}
    for case in CASES:
        meta, arrays = load_case(parity_dir, case)
        wav, sr = sf.read(parity_dir / meta["inputs"]["audio"]["file"], dtype="float32")
        assert sr == 16000
        out[case] = (torch.from_numpy(wav)[None], arrays)
    return out


@pytest.fixture(scope="module")
def from_fairseq_file(parity_files):
    return load_content_encoder(parity_files.hubert_file)


@pytest.fixture(scope="module")
def from_hf_dir(parity_files):
    return load_content_encoder(parity_files.hubert_dir)


@pytest.fixture(scope="module")
def fairseq_mod():
    """fairseq's checkpoint_utils and Dictionary, or a skip saying why not."""
    try:
        from fairseq import checkpoint_utils
        from fairseq.data.dictionary import Dictionary
    except Exception as exc:  # ImportError, or fairseq 0.12.2's dataclass error on Python 3.11
        pytest.skip(f"fairseq does not import ({type(exc).__name__}: {exc}); install the 'fairseq' extra (fairseq-fixed)")
    return checkpoint_utils, Dictionary


def _fairseq_load(fairseq_mod, path: Path, label_dir: Path):
    """fairseq's own loader, as classic RVC calls it.

    The parity file (like our writer's) has an empty ``task_state``, so fairseq's
    ``hubert_pretraining`` task builds its label dictionary from ``{label_dir}/dict.km.txt``
    (500 k-means units + 4 specials = the 504 rows of ``label_embs_concat``); we give it one.
    Its loader uses ``torch.load``'s weights-only default, so a real checkpoint needs fairseq's
    ``Dictionary`` allow-listed: done here too.
    """
    checkpoint_utils, Dictionary = fairseq_mod
    label_dir.mkdir(exist_ok=True)
    (label_dir / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(500)))
    with torch.serialization.safe_globals([Dictionary]):
        models, _, _ = checkpoint_utils.load_model_ensemble_and_task(
            [str(path)], arg_overrides={"label_dir": str(label_dir), "data": str(label_dir)}
        )
    return models[0].float().eval()


@torch.no_grad()
def _fairseq_features(model, wav: torch.Tensor, version: str) -> torch.Tensor:
    """Classic RVC: extract_features(output_layer=9|12) with an all-False padding mask; v1 -> final_proj."""
    padding_mask = torch.zeros_like(wav, dtype=torch.bool)
    x = model.extract_features(source=wav, padding_mask=padding_mask, output_layer=9 if version == "v1" else 12)[0]
    return model.final_proj(x) if version == "v1" else x


# -- (a) upstream goldens --------------------------------------------------------------------------


@pytest.mark.parity
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("source", ["from_fairseq_file", "from_hf_dir"])
def test_features_match_upstream_goldens(request, goldens, source, case, version):
    model = request.getfixturevalue(source)
    wav, arrays = goldens[case]
    feats = model.extract_features(wav, version)
    expected = arrays[version]
    assert feats.dtype == torch.float32
    assert feats.shape == (1, (wav.shape[1] - 400) // 320 + 1, 256 if version == "v1" else 768)
    err = rel_l2(feats[0].numpy(), expected)
    print(f"{source} {case} {version}: rel L2 {err:.3g}, max abs {np.abs(feats[0].numpy() - expected).max():.3g}")
    assert err <= 1e-5


@pytest.mark.parity
def test_v1_runs_only_nine_layers(from_hf_dir, goldens):
    wav = goldens["hubert_synth"][0][:, :16000]
    calls = []
    hooks = [layer.register_forward_hook(lambda *_a, i=i: calls.append(i)) for i, layer in enumerate(from_hf_dir.layers)]
    try:
        from_hf_dir.extract_features(wav, "v1")
    finally:
        for h in hooks:
            h.remove()
    assert calls == list(range(9))


# -- (b) transformers, a second implementation ----------------------------------------------------


@pytest.mark.parity
def test_layer_outputs_match_transformers(parity_files, from_hf_dir, goldens):
    transformers = pytest.importorskip("transformers", reason="transformers (dev extra) not installed")
    hf = transformers.HubertModel.from_pretrained(str(parity_files.hubert_dir), attn_implementation="eager").eval()
    proj = torch.load(parity_files.hubert_dir / "pytorch_model.bin", weights_only=True)  # our own asset
    wav = goldens["hubert_speech"][0]
    with torch.no_grad():
        theirs = hf(wav, output_hidden_states=True).hidden_states
    ours = from_hf_dir.hidden_states(wav)
    assert len(ours) == len(theirs) == 13
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert (a - b).abs().max().item() < 1e-4, f"hidden state {i}"
    v1_theirs = torch.nn.functional.linear(theirs[9], proj["final_proj.weight"], proj["final_proj.bias"])
    assert (from_hf_dir.extract_features(wav, "v1") - v1_theirs).abs().max().item() < 1e-4


def test_hf_directory_writer_roundtrip_with_transformers(tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers (dev extra) not installed")
    model = _tiny_model()
    write_hf_directory(model, tmp_path / "hf")
    assert {p.name for p in (tmp_path / "hf").iterdir()} == {"config.json", "preprocessor_config.json", "pytorch_model.bin"}
    wav = _noise(8000)
    reloaded = load_content_encoder(tmp_path / "hf")
    hf = transformers.HubertModel.from_pretrained(str(tmp_path / "hf"), attn_implementation="eager").eval()
    with torch.no_grad():
        theirs = hf(wav, output_hidden_states=True).hidden_states
    for i, (a, b, c) in enumerate(zip(model.hidden_states(wav), reloaded.hidden_states(wav), theirs)):
        assert (a - b).abs().max().item() < 1e-5, f"reloaded, hidden state {i}"
        assert (a - c).abs().max().item() < 1e-4, f"transformers, hidden state {i}"


# -- (c) fairseq, the original implementation -----------------------------------------------------


@pytest.fixture(scope="module")
def fairseq_reference(fairseq_mod, parity_files, tmp_path_factory):
    """fairseq's HubertModel built by fairseq's loader from the parity ``hubert_base.pt``."""
    return _fairseq_load(fairseq_mod, parity_files.hubert_file, tmp_path_factory.mktemp("km_labels"))


@pytest.mark.parity
def test_features_match_fairseq(fairseq_reference, from_fairseq_file, goldens):
    # one input is enough here: the goldens test covers both inputs, this one a second implementation
    case = "hubert_synth"
    wav = goldens[case][0]
    for version in ("v1", "v2"):
        theirs = _fairseq_features(fairseq_reference, wav, version)
        ours = from_fairseq_file.extract_features(wav, version)
        assert ours.shape == theirs.shape
        print(f"fairseq {case} {version}: max abs {(ours - theirs).abs().max().item():.3g}")
        assert (ours - theirs).abs().max().item() < 1e-5


def test_fairseq_writer_loads_in_fairseq(fairseq_mod, tmp_path):
    model = _tiny_model()
    path = write_fairseq_checkpoint(model, tmp_path / "tiny_hubert.pt")
    ref = _fairseq_load(fairseq_mod, path, tmp_path / "labels")
    ours = load_content_encoder(path)
    wav = _noise(9000)
    assert (ours.extract_features(wav, "v1") - _fairseq_features(ref, wav, "v1")).abs().max().item() < 1e-5
    with torch.no_grad():  # v2 = last layer (the 9th of this small model)
        last = ref.extract_features(source=wav, padding_mask=torch.zeros_like(wav, dtype=torch.bool))[0]
    assert (ours.extract_features(wav, "v2") - last).abs().max().item() < 1e-5


def test_fairseq_writer_roundtrip_is_fp16_exact(tmp_path):
    model = _tiny_model()
    reloaded = load_content_encoder(write_fairseq_checkpoint(model, tmp_path / "h.pt"))
    ckpt = torch.load(tmp_path / "h.pt", weights_only=True)  # our own file
    assert ckpt["cfg"]["model"]["conv_feature_layers"] == "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2"
    assert all(t.dtype == torch.float16 for t in ckpt["model"].values())
    theirs = model.state_dict()
    for name, t in reloaded.state_dict().items():
        expected = theirs[name].half().float()
        tol = 2e-3 * expected.abs().max().item() if name == "pos_conv.weight" else 0.0  # refolded from fp16 g, v
        assert (t - expected).abs().max().item() <= tol, name


# -- fairseq's Dictionary in the pickle ------------------------------------------------------------


def _checkpoint_with_dictionary(tmp_path: Path, monkeypatch) -> Path:
    """A fairseq checkpoint whose task_state pickles ``fairseq.data.dictionary.Dictionary``, as real ones do.

    Written under temporary fake modules of that name so that fairseq is not needed.
    """
    path = write_fairseq_checkpoint(_tiny_model(), tmp_path / "with_dict.pt")
    ckpt = torch.load(path, weights_only=True)  # our own file
    fake = types.ModuleType("fairseq.data.dictionary")

    class Dictionary:  # same __dict__ fields as fairseq's
        pass

    Dictionary.__module__, Dictionary.__qualname__ = fake.__name__, "Dictionary"
    fake.Dictionary = Dictionary
    d = Dictionary()
    d.__dict__.update(bos_word="<s>", unk_word="<unk>", pad_word="<pad>", eos_word="</s>",
                      symbols=["<s>", "<pad>", "</s>", "<unk>"] + [str(i) for i in range(500)],
                      count=[1] * 504, indices={}, bos_index=0, pad_index=1, eos_index=2, unk_index=3, nspecial=4)
    ckpt["task_state"] = {"dictionaries": [d]}
    with monkeypatch.context() as m:
        # the pickler imports the class's module: fake its parent packages too, so that the
        # real fairseq (if installed) is neither imported here nor left half-initialised
        for name in ("fairseq", "fairseq.data"):
            m.setitem(sys.modules, name, types.ModuleType(name))
        m.setitem(sys.modules, fake.__name__, fake)
        torch.save(ckpt, path)
    return path


def test_checkpoint_pickling_fairseq_dictionary_loads_without_fairseq(tmp_path, monkeypatch):
    path = _checkpoint_with_dictionary(tmp_path, monkeypatch)
    expected = load_content_encoder(write_fairseq_checkpoint(_tiny_model(), tmp_path / "plain.pt"))
    wav = _noise(6000)
    np.save(tmp_path / "wav.npy", wav.numpy())
    # A fresh interpreter, where fairseq has not been imported: the stand-in path.  Nothing named
    # fairseq (nor transformers) may appear in sys.modules afterwards, so a later real
    # `import fairseq` is unaffected and the library runs without either package.
    script = textwrap.dedent(f"""
        import sys, numpy as np, torch
        from rvc_lab.files.hubert import load_content_encoder
        m = load_content_encoder({str(path)!r})
        leaked = sorted(k for k in sys.modules if k.split(".")[0] in ("fairseq", "transformers"))
        assert not leaked, f"modules imported or registered: {{leaked}}"
        np.save({str(tmp_path / 'out.npy')!r}, m.extract_features(torch.from_numpy(np.load({str(tmp_path / 'wav.npy')!r})), "v1").numpy())
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected.extract_features(wav, "v1").numpy(), atol=1e-6)


def test_checkpoint_pickling_fairseq_dictionary_loads_with_fairseq(fairseq_mod, tmp_path, monkeypatch):
    path = _checkpoint_with_dictionary(tmp_path, monkeypatch)
    model = load_content_encoder(path)  # fairseq is imported here: its real class is allow-listed
    assert model.extract_features(_noise(6000), "v2").shape == (1, 18, 64)


# -- (d) hostile and broken files ------------------------------------------------------------------


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch_zip", "plain_pickle"])
def test_pickle_calling_os_system_is_refused(tmp_path, container):
    marker = tmp_path / "PWNED"
    path = tmp_path / "hubert_base.pt"
    payload = {"cfg": None, "model": {"post_extract_proj.weight": _RunsShell(marker)}}
    if container == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ModelFileError) as err:
        load_content_encoder(path)
    assert str(path) in str(err.value) and "refused" in str(err.value)
    assert not marker.exists()


def test_conv_layers_string_is_never_evaluated(tmp_path):
    marker = tmp_path / "PWNED"
    path = write_fairseq_checkpoint(_tiny_model(), tmp_path / "h.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["cfg"]["model"]["conv_feature_layers"] = f"__import__('os').system('touch {marker}')"
    torch.save(ckpt, path)
    with pytest.raises(ModelFileError, match="conv_feature_layers"):
        load_content_encoder(path)
    assert not marker.exists()


@pytest.mark.parity
def test_truncated_checkpoint(parity_files, tmp_path):
    data = parity_files.hubert_file.read_bytes()
    path = tmp_path / "hubert_base.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt") as err:
        load_content_encoder(path)
    assert err.value.path == str(path)


@pytest.mark.parity
def test_other_model_files_are_not_hubert(parity_files):
    for path in (parity_files.rmvpe, parity_files.voice()):
        with pytest.raises(ModelFileError, match="not a HuBERT checkpoint") as err:
            load_content_encoder(path)
        assert err.value.path == str(path)


def test_missing_and_misshapen_tensors(tmp_path):
    path = write_fairseq_checkpoint(_tiny_model(), tmp_path / "h.pt")
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model"]["encoder.layers.3.fc1.weight"]
    torch.save(ckpt, tmp_path / "missing.pt")
    with pytest.raises(ModelFileError, match=r"missing encoder\.layers\.3\.fc1\.weight"):
        load_content_encoder(tmp_path / "missing.pt")

    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["final_proj.weight"] = torch.zeros(16, 32, dtype=torch.float16)
    torch.save(ckpt, tmp_path / "shape.pt")
    with pytest.raises(ModelFileError, match=r"final_proj\.weight has shape \[16, 32\], expected \[16, 64\]"):
        load_content_encoder(tmp_path / "shape.pt")

    ckpt = torch.load(path, weights_only=True)
    ckpt["cfg"]["model"]["layer_norm_first"] = True
    torch.save(ckpt, tmp_path / "large.pt")
    with pytest.raises(ModelFileError, match="pre-LN"):
        load_content_encoder(tmp_path / "large.pt")


def test_hf_directory_problems(tmp_path):
    d = write_hf_directory(_tiny_model(), tmp_path / "hf")
    state = torch.load(d / "pytorch_model.bin", weights_only=True)
    # newer transformers store weight norm as a parametrization: accepted too
    prefix = "encoder.pos_conv_embed.conv."
    state[prefix + "parametrizations.weight.original0"] = state.pop(prefix + "weight_g")
    state[prefix + "parametrizations.weight.original1"] = state.pop(prefix + "weight_v")
    torch.save(state, d / "pytorch_model.bin")
    wav = _noise(5000)
    assert (load_content_encoder(d).extract_features(wav, "v2") - _tiny_model().extract_features(wav, "v2")).abs().max() < 1e-5

    del state[prefix + "parametrizations.weight.original1"]
    torch.save(state, d / "pytorch_model.bin")
    with pytest.raises(ModelFileError, match="pos_conv_embed"):
        load_content_encoder(d)
    (d / "config.json").unlink()
    with pytest.raises(ModelFileError, match="config.json is missing"):
        load_content_encoder(d)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_content_encoder(tmp_path / "nope.pt")


# -- module behaviour ------------------------------------------------------------------------------


def test_frame_count_and_short_input():
    model = _tiny_model()
    for n in (400, 719, 720, 16000, 16001):
        assert model.extract_features(_noise(n), "v2").shape[1] == (n - 400) // 320 + 1
    with pytest.raises(InvalidAudioError, match="400 samples"):
        model.extract_features(_noise(399), "v1")
    with pytest.raises(ValueError, match="version"):
        model.extract_features(_noise(1000), "v3")


def test_batch_rows_are_independent():
    model = _tiny_model()
    a, b = _noise(4000, seed=1), _noise(4000, seed=2)
    both = model.extract_features(torch.cat([a, b]), "v1")
    assert torch.allclose(both[1:], model.extract_features(b, "v1"), atol=1e-5)



def test_first_convolution_as_matrix_product_equals_conv1d():
    # WaveformConvStack.first_conv replaces oneDNN's 1 -> 512 channel convolution: same sums.
    torch.manual_seed(0)
    stack = HubertBase(HubertConfig()).conv_stack
    wav = torch.randn(2, 16000)
    with torch.no_grad():
        want = torch.nn.functional.conv1d(wav.unsqueeze(1), stack.convs[0].weight, stride=5)
        got = stack.first_conv(wav)
    assert got.shape == want.shape == (2, 512, 3199)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
