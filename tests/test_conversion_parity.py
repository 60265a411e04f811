"""Offline and streaming conversion against upstream RVC's goldens, through the command line.

The commands are exactly those of ../shared/parity/README.md; outputs are compared sample by
sample (no alignment): offline on the int16 samples, streaming on the float samples, in both
noise modes (zero draws, and seeded draws in upstream's order).  Each runs on the eager torch
backend and on exported models (``--backend torchscript|onnx``: the voice is exported once into
the cache, shared by every test here; F0 and retrieval stay eager).
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from rvc_lab import cli
from tests.conftest import load_case, rel_l2
from tests.tolerances import UPSTREAM_REL_L2

pytestmark = pytest.mark.parity

def _voice_args(files):
    return ["--model", str(files.voice()), "--index", str(files.index()), "--hubert", str(files.hubert_dir),
            "--rmvpe", str(files.rmvpe)]


def _noise_args(meta, key):
    seed = meta["noise"][key]
    return ["--no-noise"] if seed is None else [f"--seed={seed}"]


BACKENDS = ["torch", "torchscript", "onnx"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["zero", "seeded"])
def test_offline_convert_matches_upstream(parity_dir, parity_files, tmp_path, mode, backend):
    case = f"offline_v2_40k_rmvpe_synth__{mode}"
    meta, arrays = load_case(parity_dir, case)
    out = tmp_path / "out.wav"
    rc = cli.main([
        "convert", str(parity_files.root / "audio/synth_16k.wav"), "-o", str(out), *_voice_args(parity_files),
        "--f0-method", "rmvpe", "--pitch=3", "--index-rate=0.75", "--rms-mix=0.25", "--protect=0.33",
        "--resample-sr=0", "--sid=0", *_noise_args(meta, "torch_manual_seed"), f"--backend={backend}",
    ])
    assert rc == 0
    got, sr = sf.read(out, dtype="int16")
    want, want_sr = sf.read(parity_dir / "cases" / case / "out.wav", dtype="int16")
    assert sr == want_sr == 40000
    err = rel_l2(got, want)
    print(f"{case} {backend}: rel L2 {err:.3e}, max |diff| {np.abs(got.astype(int) - want).max()} LSB")
    assert err <= 1e-4


def test_offline_stage_arrays_match_upstream(parity_dir, parity_files):
    """F0 of the padded input and the raw generator chunk, before any integer decision downstream."""
    from rvc_lab.audio import load_audio
    from rvc_lab.convert.models import ConverterModels
    from rvc_lab.convert.offline import OfflineSettings, convert_offline

    _, arrays = load_case(parity_dir, "offline_v2_40k_rmvpe_synth__zero")
    files = parity_files
    models = ConverterModels.load(**{**files.model_paths(), "hubert": files.hubert_file})  # the fairseq file
    x, sr = load_audio(files.root / "audio/synth_16k.wav")
    settings = OfflineSettings(f0_method="rmvpe", pitch=3, index_rate=0.75, rms_mix_rate=0.25, protect=0.33, noise=False)
    res = convert_offline(models, x, settings, record_stages=True)
    assert np.array_equal(res.stages["f0_coarse"], arrays["f0_coarse_full"])
    assert rel_l2(res.stages["f0_hz"], arrays["f0_hz_full"]) <= UPSTREAM_REL_L2
    t_pad_tgt = 40000
    assert rel_l2(res.stages["generator_output"], arrays["vc_chunk0"][t_pad_tgt:-t_pad_tgt]) <= 1e-4


STREAM_CASES = {
    "realtime_v2_40k_rmvpe_synth_dev48k": (
        "synth_48k.wav",
        ["--f0-method", "rmvpe", "--pitch=3", "--formant=0.0", "--index-rate=0.5", "--rms-mix=0.0",
         "--block-time=0.25", "--crossfade=0.05", "--extra-time=2.5", "--threshold=-60"],
    ),
    "realtime_v2_40k_fcpe_speech_dev48k_formant": (
        "speech_48k.wav",
        ["--f0-method", "fcpe", "--pitch=-2", "--formant=2.0", "--index-rate=0.0", "--rms-mix=0.5",
         "--block-time=0.2", "--crossfade=0.08", "--extra-time=1.5", "--threshold=-45"],
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["zero", "seeded"])
@pytest.mark.parametrize("name", sorted(STREAM_CASES))
def test_stream_matches_upstream(parity_dir, parity_files, tmp_path, name, mode, backend):
    case = f"{name}__{mode}"
    meta, arrays = load_case(parity_dir, case)
    wav, extra = STREAM_CASES[name]
    out, trace = tmp_path / "out.wav", tmp_path / "trace.csv"
    rc = cli.main([
        "stream", str(parity_files.root / "audio" / wav), "-o", str(out), *_voice_args(parity_files), *extra,
        "--output-sr", "stream", "--sid=0", *_noise_args(meta, "base_seed"), "--trace", str(trace),
        f"--backend={backend}",
    ])
    assert rc == 0
    got, sr = sf.read(out, dtype="float32")
    want, want_sr = sf.read(parity_dir / "cases" / case / "out.wav", dtype="float32")
    assert sr == want_sr
    import pandas as pd

    offsets = pd.read_csv(trace)["sola_offset"].to_numpy()
    err = rel_l2(got, want)
    print(f"{case} {backend}: rel L2 {err:.3e}; SOLA offsets equal: {np.array_equal(offsets, arrays['sola_offset'])}")
    np.testing.assert_array_equal(offsets, arrays["sola_offset"])
    assert err <= 1e-4


def test_stream_block_internals_match_upstream(parity_dir, parity_files):
    """Per block: coarse pitch exactly, pitchf and generator output to float32 precision."""
    from rvc_lab.audio import load_audio
    from rvc_lab.convert.models import ConverterModels
    from rvc_lab.convert.streaming import StreamSettings, stream_file

    meta, arrays = load_case(parity_dir, "realtime_v2_40k_rmvpe_synth_dev48k__zero")
    models = ConverterModels.load(**parity_files.model_paths())
    x, sr = load_audio(parity_files.root / "audio/synth_48k.wav")
    settings = StreamSettings(pitch=3, index_rate=0.5, rms_mix_rate=0.0, noise=False)
    _, _, conv = stream_file(models, x, sr, settings, record=True)
    recs = conv.records
    assert len(recs) == arrays["sola_offset"].shape[0]
    np.testing.assert_array_equal(np.stack([r["pitch"] for r in recs]), arrays["block_pitch"])
    assert rel_l2(np.stack([r["pitchf"] for r in recs]), arrays["block_pitchf"]) <= UPSTREAM_REL_L2
    sums = np.array([[r["feats"].astype(np.float64).sum(), np.square(r["feats"].astype(np.float64)).sum()] for r in recs])
    assert rel_l2(sums[:, 1], arrays["block_feats_sum_sumsq"][:, 1]) <= 1e-5
    assert rel_l2(np.stack([r["infer_out"] for r in recs]), arrays["block_rvc_infer_out"]) <= 1e-4
