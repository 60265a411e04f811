"""F0 methods, RMVPE network and file, pitch helpers.

Truths used: upstream RVC's own outputs on the parity assets (``f0_synth``/``f0_speech``),
synthetic tones of known pitch, and the coarse-pitch formula evaluated independently in float64.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from rvc_lab.errors import ModelFileError, SettingsError
from rvc_lab.f0 import (
    F0_MAX,
    F0_MIN,
    METHODS,
    F0Estimator,
    coarse_pitch,
    coarse_pitch_torch,
    interpolate_unvoiced,
    shift_semitones,
)
from rvc_lab.files.rmvpe import load_rmvpe, random_rmvpe_tensor, random_rmvpe_weights, write_rmvpe
from rvc_lab.models.rmvpe import RMVPE, RMVPENet, salience_to_hz
from tests.conftest import load_case, rel_l2
from tests.tolerances import UPSTREAM_REL_L2

SR = 16000
EDGE = 3  # frames at each end whose analysis window reaches past the signal


def harmonic_tone(f0: float, seconds: float, n_harmonics: int = 4) -> np.ndarray:
    """Sum of harmonics k*f0 with amplitude 0.3/k, float64."""
    t = np.arange(int(round(seconds * SR))) / SR
    return 0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, n_harmonics + 1))


def frequency_step(f_a: float, f_b: float, seconds: float, step_at: float) -> np.ndarray:
    """Phase-continuous 4-harmonic tone jumping from f_a to f_b at ``step_at`` seconds, -50 dB noise.

    (Harvest declares very clean tones with few harmonics unvoiced - a pure sine, and even a
    noiseless 3-harmonic 200 Hz tone after 0.12 s - so this signal carries a little noise.)
    """
    n = int(round(seconds * SR))
    inst = np.where(np.arange(n) < int(step_at * SR), f_a, f_b)
    phase = 2 * np.pi * np.cumsum(inst) / SR
    tone = 0.3 * sum(np.sin(k * phase) / k for k in range(1, 5))
    return tone + 0.001 * np.random.default_rng(0).standard_normal(n)


# ----------------------------------------------------------------------------------------------
# Shared, expensive objects (built once per module)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_rmvpe_file(tmp_path_factory):
    """A full-size RMVPE file with seeded random weights (rvc_lab's own writer), and its weights."""
    path = tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt"
    weights = random_rmvpe_weights(seed=0)
    write_rmvpe(weights, path)
    return path, weights


@pytest.fixture(scope="module")
def parity_rmvpe_path(parity_files):
    return parity_files.rmvpe


@pytest.fixture(scope="module")
def parity_estimators(parity_rmvpe_path):
    return {m: F0Estimator(m, rmvpe_path=parity_rmvpe_path) for m in ("pm", "rmvpe", "fcpe")}


@pytest.fixture(scope="module")
def cheap_estimators():
    return {m: F0Estimator(m) for m in ("pm", "harvest", "dio", "fcpe")}


def _case_audio(parity_assets, parity_dir, case):
    meta, golden = load_case(parity_dir, case)
    name = case.split("_", 1)[1]
    x, sr = sf.read(parity_assets / "audio" / f"{name}_16k.wav", dtype="float32")
    assert sr == SR
    return x, golden


# ----------------------------------------------------------------------------------------------
# (a) Parity with upstream RVC (goldens f0_synth / f0_speech)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parity
@pytest.mark.parametrize("case", ["f0_synth", "f0_speech"])
def test_rmvpe_matches_upstream(case, parity_assets, parity_dir, parity_estimators):
    x, golden = _case_audio(parity_assets, parity_dir, case)
    model = parity_estimators["rmvpe"].impl.model

    mel = model.mel(x).numpy()
    assert mel.shape == golden["rmvpe_mel"].shape == (128, len(x) // 160 + 1)
    assert rel_l2(mel, golden["rmvpe_mel"]) <= UPSTREAM_REL_L2  # Intel 0.0, AMD 7.3e-6 (tests/tolerances.py)

    salience = model.salience_from_mel(torch.from_numpy(mel)).numpy()
    assert rel_l2(salience, golden["rmvpe_salience"]) <= UPSTREAM_REL_L2
    # Same peak bin in every frame: the decoder takes the same decisions as upstream.
    np.testing.assert_array_equal(salience.argmax(1), golden["rmvpe_salience"].argmax(1))

    f0 = salience_to_hz(salience, threshold=0.03)  # the full audio path runs in the offline test
    assert f0.dtype == np.float64
    assert rel_l2(f0, golden["rmvpe_f0"]) <= 1e-4
    np.testing.assert_array_equal(f0 == 0, golden["rmvpe_f0"] == 0)


@pytest.mark.parity
@pytest.mark.parametrize("case", ["f0_synth", "f0_speech"])
def test_fcpe_matches_upstream(case, parity_assets, parity_dir, parity_estimators):
    x, golden = _case_audio(parity_assets, parity_dir, case)
    f0 = parity_estimators["fcpe"].track(x)
    assert f0.shape == golden["fcpe_f0"].shape
    assert rel_l2(f0, golden["fcpe_f0"]) <= 1e-4
    np.testing.assert_array_equal(f0 == 0, golden["fcpe_f0"] == 0)


@pytest.mark.parity
@pytest.mark.parametrize("method", ["pm", "rmvpe", "fcpe"])
@pytest.mark.parametrize("case", ["f0_synth", "f0_speech"])
def test_offline_get_f0_matches_upstream(case, method, parity_assets, parity_dir, parity_estimators):
    """Offline ``Pipeline.get_f0(x64, len//160, key 0)`` = offline() + gap filling + shift + coarse."""
    x, golden = _case_audio(parity_assets, parity_dir, case)
    x64 = x.astype(np.float64)
    raw = parity_estimators[method].offline(x64, len(x64) // 160)
    if method in ("rmvpe", "fcpe"):  # upstream's get_f0 runs the same call as the f0 track
        assert rel_l2(raw, golden[f"{method}_f0"]) <= 1e-4
    f0 = shift_semitones(interpolate_unvoiced(raw), 0)
    coarse = coarse_pitch(f0)

    expected_f0 = golden[f"pipeline_{method}_f0"]
    expected_coarse = golden[f"pipeline_{method}_coarse"]
    assert f0.shape == expected_f0.shape
    assert f0.dtype == expected_f0.dtype  # float32 for fcpe, as upstream
    assert rel_l2(f0, expected_f0) <= 1e-4
    assert coarse.dtype == np.int32
    np.testing.assert_array_equal(coarse, expected_coarse)


# The streaming pitch ring and cache merge are checked by driving the engine itself, block by block,
# against upstream's golden: tests/test_conversion_parity.py::test_stream_block_internals_match_upstream.


# ----------------------------------------------------------------------------------------------
# (b) Ground truth: tones of known pitch
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["pm", "harvest", "dio", "fcpe"])
def test_harmonic_tone_pitch_within_one_percent(method, cheap_estimators):
    f0 = cheap_estimators[method].track(harmonic_tone(220.0, 1.0))
    assert len(f0) == SR // 160 + 1
    inner = f0[EDGE:-EDGE]
    assert (inner > 0).all(), f"{method} left frames of a steady tone unvoiced"
    assert np.abs(inner / 220.0 - 1).max() <= 0.01


@pytest.mark.parametrize("method", ["crepe-tiny", "crepe"])
def test_crepe_tone_pitch(method):
    """CREPE within one pitch bin: torchcrepe dithers by up to +-20 cents (1.16 %) per frame."""
    seconds = 0.5  # crepe full costs ~7 s per second of audio on 2 cores
    f0 = F0Estimator(method).track(harmonic_tone(220.0, seconds))
    assert len(f0) == int(seconds * SR) // 160 + 1
    inner = f0[EDGE:-EDGE]
    assert (inner > 0).all()
    error = np.abs(inner / 220.0 - 1)
    assert error.max() <= 0.012
    assert np.median(error) <= 0.005


def test_crepe_is_reproducible_and_leaves_global_rng_alone():
    est = F0Estimator("crepe-tiny")
    x = harmonic_tone(220.0, 0.25)
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = est.track(x)
    assert np.random.random() == expected_next
    np.testing.assert_array_equal(first, est.track(x))


def test_harvest_finds_pure_sine_unvoiced_but_not_a_harmonic_tone(cheap_estimators):
    """Documented pyworld behaviour: Harvest's voicing test rejects a single pure sinusoid.

    Measured: a 1 s, 220 Hz sine gets 2 voiced frames out of 101 (the last two, an octave off);
    slight noise (-40 dB) or harmonics make it voiced.  DIO and Praat find the sine.
    """
    t = np.arange(SR) / SR
    sine = 0.3 * np.sin(2 * np.pi * 220.0 * t)
    f0 = cheap_estimators["harvest"].track(sine)
    assert (f0[: -EDGE] == 0).all()
    assert (f0 > 0).sum() <= EDGE

    noisy = sine + 0.003 * np.random.default_rng(0).standard_normal(len(sine))
    f0_noisy = cheap_estimators["harvest"].track(noisy)[EDGE:-EDGE]
    assert (f0_noisy > 0).all() and np.abs(f0_noisy / 220 - 1).max() <= 0.01

    for other in ("dio", "pm"):
        inner = cheap_estimators[other].track(sine)[EDGE:-EDGE]
        assert (inner > 0).all() and np.abs(inner / 220 - 1).max() <= 0.01


@pytest.mark.parametrize("method", ["pm", "harvest", "dio", "fcpe"])
def test_track_and_realtime_are_time_aligned(method, cheap_estimators):
    """Frame i is at i*10 ms: a 200 -> 300 Hz jump at 0.5 s shows up at frame 50 (+-2)."""
    x = frequency_step(200.0, 300.0, 1.0, 0.5)
    est = cheap_estimators[method]
    for f0 in (est.track(x), est.realtime(torch.from_numpy(x).float())):
        first_high = EDGE + int(np.argmax(f0[EDGE:] > 250))
        assert abs(first_high - 50) <= 2, f"{method}: jump found at frame {first_high}"


# ----------------------------------------------------------------------------------------------
# (c) Frame counts and pitch helpers
# ----------------------------------------------------------------------------------------------
# Streaming windows: rmvpe 5120*k - 160 (4000-sample block + 800 -> 4960), others block + 800.
@pytest.fixture(scope="module")
def all_estimators(random_rmvpe_file):
    return {m: F0Estimator(m, rmvpe_path=random_rmvpe_file[0]) for m in METHODS if m != "crepe"}


@pytest.mark.parametrize("n", [4960, 5641])
@pytest.mark.parametrize("method", ["pm", "harvest", "dio", "crepe-tiny", "rmvpe", "fcpe"])
def test_frame_counts(method, n, all_estimators):
    est = all_estimators[method]
    x = harmonic_tone(180.0, n / SR)
    assert len(x) == n
    natural = n // 160 + 1
    assert len(est.realtime(torch.from_numpy(x).float())) == natural
    assert len(est.track(x)) == natural
    p_len = n // 160
    offline = est.offline(x, p_len)
    # Upstream's offline lengths: pm pads to p_len, rmvpe/fcpe keep their natural length (cut
    # later by the pipeline), classic harvest/dio/crepe resample to p_len.
    assert len(offline) == (natural if method in ("rmvpe", "fcpe") else p_len)


def test_interpolate_unvoiced():
    f0 = np.array([0.0, 100.0, 0.0, 0.0, 200.0, 0.0])
    np.testing.assert_allclose(interpolate_unvoiced(f0), [100, 100, 400 / 3, 500 / 3, 200, 200])
    assert f0[0] == 0  # input untouched
    assert interpolate_unvoiced(f0.astype(np.float32)).dtype == np.float32
    np.testing.assert_array_equal(interpolate_unvoiced(np.zeros(4)), np.zeros(4))  # nothing to fill from


def test_shift_semitones():
    f0 = np.array([0.0, 110.0, 220.0])
    np.testing.assert_allclose(shift_semitones(f0, 12), [0, 220, 440])
    np.testing.assert_allclose(shift_semitones(f0, -12), [0, 55, 110])
    np.testing.assert_allclose(shift_semitones(f0, 7), f0 * 2 ** (7 / 12))
    assert shift_semitones(f0.astype(np.float32), 3).dtype == np.float32


def _coarse_reference(f0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent float64 evaluation: (codes, distance of the scaled value to a .5 tie)."""
    mel = 1127 * np.log1p(np.asarray(f0, dtype=np.float64) / 700)
    m_lo, m_hi = 1127 * np.log1p(F0_MIN / 700), 1127 * np.log1p(F0_MAX / 700)
    scaled = np.clip(np.where(mel > 0, (mel - m_lo) * 254 / (m_hi - m_lo) + 1, 1), 1, 255)
    return np.rint(scaled).astype(np.int32), np.abs(scaled - np.floor(scaled) - 0.5)


def test_coarse_pitch_boundaries_and_formula():
    codes = coarse_pitch(np.array([0.0, 10.0, 49.9, 50.0, 1100.0, 1100.1, 5000.0]))
    np.testing.assert_array_equal(codes, [1, 1, 1, 1, 255, 255, 255])
    assert codes.dtype == np.int32
    torch_codes = coarse_pitch_torch(torch.tensor([0.0, 10.0, 49.9, 50.0, 1100.0, 1100.1, 5000.0]))
    assert torch_codes.dtype == torch.int64
    np.testing.assert_array_equal(torch_codes.numpy(), codes)

    sweep = np.linspace(0.0, 1500.0, 150001)
    expected, tie_distance = _coarse_reference(sweep)
    np.testing.assert_array_equal(coarse_pitch(sweep), expected)
    assert set(np.unique(expected)) == set(range(1, 256))  # every code is reachable
    assert (np.diff(coarse_pitch(sweep)) >= 0).all()
    # float32 paths (fcpe offline, all realtime) may round differently only at a .5 tie.
    not_tie = tie_distance > 1e-3
    sweep32 = sweep.astype(np.float32)
    np.testing.assert_array_equal(coarse_pitch(sweep32)[not_tie], expected[not_tie])
    np.testing.assert_array_equal(coarse_pitch_torch(torch.from_numpy(sweep32)).numpy()[not_tie], expected[not_tie])


# ----------------------------------------------------------------------------------------------
# Settings and laziness
# ----------------------------------------------------------------------------------------------
def test_settings_errors(tmp_path):
    with pytest.raises(SettingsError, match="f0-method"):
        F0Estimator("yin")
    with pytest.raises(SettingsError, match="rmvpe"):
        F0Estimator("rmvpe")
    with pytest.raises(SettingsError, match="odd"):
        F0Estimator("harvest", filter_radius=4)
    with pytest.raises(SettingsError, match="filter_radius"):
        F0Estimator("harvest", filter_radius=9)
    assert set(METHODS) == {"pm", "harvest", "dio", "crepe", "crepe-tiny", "rmvpe", "fcpe"}

    # A missing model file is reported when the model is first needed, as a file error.
    est = F0Estimator("rmvpe", rmvpe_path=tmp_path / "absent.pt")
    with pytest.raises(ModelFileError, match="not found"):
        est.track(np.zeros(1600))


def test_too_short_audio_is_refused_clearly(random_rmvpe_file):
    from rvc_lab.errors import InvalidAudioError

    with pytest.raises(InvalidAudioError, match="513 samples"):
        F0Estimator("rmvpe", rmvpe_path=random_rmvpe_file[0]).track(np.zeros(400))
    with pytest.raises(InvalidAudioError, match="160 samples"):
        F0Estimator("crepe-tiny").track(np.zeros(100))
    assert len(F0Estimator("pm").track(np.zeros(100))) == 1


def test_harvest_filter_radius_is_a_median_filter(cheap_estimators):
    from scipy.signal import medfilt

    x = harmonic_tone(150.0, 0.5) + 0.02 * np.random.default_rng(1).standard_normal(SR // 2)
    raw = F0Estimator("harvest", filter_radius=0).track(x)
    np.testing.assert_array_equal(F0Estimator("harvest", filter_radius=5).track(x), medfilt(raw, 5))


def test_rmvpe_model_is_loaded_lazily_once(tmp_path, all_estimators):
    # Nothing is read when the estimator is made (the file does not even exist yet) ...
    lazy = F0Estimator("rmvpe", rmvpe_path=tmp_path / "later.pt")
    assert lazy._impl is None
    # ... and once loaded, the model is reused across calls and entry points.
    est = all_estimators["rmvpe"]
    x = harmonic_tone(200.0, 0.31)
    est.track(x)
    model = est.impl.model
    est.realtime(torch.from_numpy(x).float())
    est.offline(x, len(x) // 160)
    assert est.impl.model is model


# ----------------------------------------------------------------------------------------------
# (d) RMVPE files
# ----------------------------------------------------------------------------------------------
def test_rmvpe_file_round_trip(random_rmvpe_file):
    path, weights = random_rmvpe_file
    raw = torch.load(path, weights_only=True)
    assert all(v.dtype == torch.float16 for k, v in raw.items() if not k.endswith("num_batches_tracked"))
    model = load_rmvpe(path)
    loaded = model.net.state_dict()
    assert loaded.keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(loaded[key].to(value.dtype), value), key  # fp16-representable: exact
    # Seeded per key: any tensor regenerates alone to the same values; another seed differs.
    for key in ("unet.encoder.bn.running_var", "fc.0.gru.weight_ih_l0", "unet.decoder.layers.4.conv2.3.conv.3.weight"):
        assert torch.equal(random_rmvpe_tensor(0, key), weights[key])
        assert not torch.equal(random_rmvpe_tensor(1, key), weights[key])
    # The network's output equals that of an in-memory copy.
    with torch.device("meta"):
        net = RMVPENet()
    net.load_state_dict(weights, assign=True)
    x = harmonic_tone(200.0, 0.3)
    assert torch.equal(model.salience(x), RMVPE(net).salience(x))


def _shape_only_state(dtype=torch.float16):
    """A structurally valid RMVPE state dict that costs no memory (stride-0 tensors)."""
    from rvc_lab.files.rmvpe import _parameter_shapes

    return {k: torch.zeros((), dtype=dtype).expand(s) for k, s in _parameter_shapes().items()}


def test_bad_rmvpe_files(tmp_path, random_rmvpe_file):
    good = random_rmvpe_file[0]

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: os.path.getsize(good) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_rmvpe(truncated)

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load_rmvpe(empty)

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    crafted = tmp_path / "crafted.pt"
    torch.save({"unet.encoder.bn.weight": Exploit()}, crafted)
    with pytest.raises(ModelFileError, match="allow-list"):
        load_rmvpe(crafted)
    assert not (tmp_path / "pwned").exists()

    def rejected(state, match):
        path = tmp_path / "bad.pt"
        torch.save(state, path)
        with pytest.raises(ModelFileError, match=match):
            load_rmvpe(path)

    rejected([torch.zeros(3)], "state dict")
    rejected({"weight": torch.zeros(3)}, "missing tensors")
    state = _shape_only_state()
    state["extra.weight"] = torch.zeros(2)
    rejected(state, "unexpected keys")
    state = _shape_only_state()
    state["unet.encoder.bn.weight"] = torch.zeros(2)
    rejected(state, "shape")
    state = _shape_only_state()
    state["unet.encoder.bn.weight"] = torch.full((1,), float("nan"), dtype=torch.float16)
    rejected(state, "NaN")
    state = _shape_only_state()
    state["unet.encoder.bn.weight"] = torch.ones(1, dtype=torch.int32)
    rejected(state, "dtype")


@pytest.mark.parametrize("height", [1, 2])
def test_rmvpe_conv3x3_middle_row_path_equals_full_convolution(height):
    # Conv3x3 drops the kernel rows that only meet zero padding when the time axis has one frame.
    from rvc_lab.models.rmvpe import Conv3x3

    torch.manual_seed(0)
    conv = Conv3x3(64, 32).eval()
    x = torch.randn(1, 64, height, 4)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, conv.weight, padding=1),
                                   rtol=1e-5, atol=1e-6)
        conv.weight.mul_(2.0)  # an in-place change of the weights is seen by the cached row
        torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, conv.weight, padding=1),
                                   rtol=1e-5, atol=1e-6)
