"""Reference cases: make them, re-run and check them, compare an external output against one.

A case is a directory (layout in DESIGN.md)::

    case.json     parameters, input file, asset fingerprints, tolerances per metric, producer
    input.wav     the input at its own rate
    expected.wav  the output to match (offline: int16 as upstream returns it; stream: float32)
    stages.npz    per-stage golden vectors, so a port can find the first stage where it diverges

Stage vectors (float32 unless said):
offline: ``input_16k`` [N], ``encoder_input`` [N + 2 x_pad * 16000] (the high-passed, reflect-padded
signal the content encoder reads; a port starts there), ``content_features`` [T20, C], ``blended_features`` [T20, C],
``f0_hz`` (float64) / ``f0_coarse`` (int32) [P] on the 10 ms grid of the padded input,
``generator_output`` [S] at the voice rate, ``output_float`` [S] before int16.
stream: ``block_input_16k`` [B, N16] (the 16 kHz ring the content encoder reads; a port starts there),
``block_feats`` [B, p_len, C] (blended, on the 10 ms grid, as the generator gets them), ``block_pitch`` (int64) / ``block_pitchf`` [B, p_len],
``block_infer_out`` [B, L] at the voice rate, ``sola_offset`` (int64) [B].
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import rvc_lab
from rvc_lab.atomic import atomic_directory
from rvc_lab.audio import load_audio, prepare_input, resample_offline, write_wav_atomic
from rvc_lab.convert.models import ConverterModels
from rvc_lab.convert.offline import OfflineSettings, convert_offline
from rvc_lab.convert.streaming import StreamSettings, stream_file
from rvc_lab.errors import RVCLabError, SettingsError
from rvc_lab.files.safe_load import safe_torch_load
from rvc_lab.files.synthetic import cached_demo_assets, default_cache_dir
from rvc_lab.metrics.compare import compare_audio, compare_stages

log = logging.getLogger(__name__)

CASE_FILE = "case.json"

#: Default tolerances of a case: audio compared after delay alignment; stages without alignment.
DEFAULT_TOLERANCES = {
    "audio": {
        "delay_samples": {"max_abs": 0},
        "rel_l2": {"max": 1e-3},
        "snr_db": {"min": 50.0},
        "gain_db": {"max_abs": 0.05},
        # NaN when neither output has voiced frames in common: then there is no pitch to compare
        "f0_cents_mae": {"max": 5.0, "allow_nan": True},
    },
    # largest relative L2 error per stage; integer stages: a flipped coarse code moves rel L2 by ~1e-2
    "stages": {"default": 1e-4, "f0_coarse": 1e-2, "block_pitch": 1e-2, "sola_offset": 0.0},
}

#: Stage order of each chain: the first failing stage in this order is where a port diverged.
STAGE_ORDER = {
    "offline": ["input_16k", "encoder_input", "content_features", "blended_features", "f0_hz", "f0_coarse",
                "generator_output", "output_float"],
    "stream": ["block_input_16k", "block_feats", "block_pitch", "block_pitchf", "block_infer_out", "sola_offset"],
}


# ----------------------------------------------------------------------------- assets
def fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a file's *content*: tensors for torch files (bytes of torch.save vary by version),
    raw bytes for everything else.  Cached per (path, size, mtime): assets are hundreds of MB."""
    p = Path(path).resolve()
    st = p.stat()
    return _fingerprint_cached(str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _fingerprint_cached(path: str, size: int, mtime_ns: int) -> str:
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                h.update(f.name.encode())
                h.update(fingerprint(f).encode())
        return h.hexdigest()
    if p.suffix in (".pt", ".pth", ".bin"):
        try:
            obj = safe_torch_load(p, what="model file")
        except RVCLabError:
            obj = None
        if obj is not None:
            _hash_tree(h, obj)
            return h.hexdigest()
    h.update(p.read_bytes())
    return h.hexdigest()


def _hash_tree(h, obj) -> None:
    import torch

    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _hash_tree(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _hash_tree(h, v)
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:
        h.update(repr(obj).encode())


def resolve_assets(spec: dict, cache_dir: str | os.PathLike | None = None) -> dict[str, str | None]:
    """Paths of a case's model files.

    ``spec["source"] == "demo"``: rvc_lab's seeded demo assets (``seed``; ``model``/``index`` name
    entries of :func:`rvc_lab.files.synthetic.demo_assets`), regenerated into the cache when missing.
    ``"files"``: paths given as they are (relative paths are relative to the case directory's parent).
    """
    if spec.get("source") == "demo":
        paths = cached_demo_assets(int(spec["seed"]), cache_dir)
        return {k: (str(paths[spec[k]]) if spec.get(k) else None) for k in ("model", "index")} | {
            "hubert": str(paths["hubert"]), "rmvpe": str(paths["rmvpe"])}
    if spec.get("source") == "parity":
        root = parity_assets(cache_dir=cache_dir)
        return {k: (str(root / spec[k]) if spec.get(k) else None) for k in ("model", "index", "hubert", "rmvpe")}
    return {k: spec.get(k) for k in ("model", "index", "hubert", "rmvpe")}


def default_parity_dir() -> Path:
    """Upstream's goldens: ``$RVC_LAB_PARITY_DIR``, else ``../shared/parity`` beside the checkout."""
    env = os.environ.get("RVC_LAB_PARITY_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "parity"


def parity_assets(parity_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The seed-1234 random-weight assets upstream's goldens were made with, in ``<cache>/parity-assets``.

    Regenerated by the goldens' own ``make_assets.py`` when missing or unverified (about 10 s).

    Raises
    ------
    SettingsError
        When the goldens are not there, or the regenerated files fail their check.
    """
    out = Path(cache_dir or default_cache_dir()) / "parity-assets"
    stamp = out / "PARITY_ASSETS.json"
    if _parity_verified(stamp):
        return out
    script = Path(parity_dir or default_parity_dir()) / "make_assets.py"
    if not script.is_file():
        raise SettingsError(f"upstream parity goldens not found ({script} missing): set RVC_LAB_PARITY_DIR")
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=False)
    if not _parity_verified(stamp):
        raise SettingsError(f"parity assets in {out} failed their check (see {stamp})")
    return out


def _parity_verified(stamp: Path) -> bool:
    try:
        return json.loads(stamp.read_text()).get("check") in ("bytes", "values")
    except (OSError, ValueError):
        return False


# ----------------------------------------------------------------------------- running
def run_chain(kind: str, assets: dict, params: dict, input_path: str | os.PathLike):
    """Run rvc_lab on a case's input.

    Returns
    -------
    audio : np.ndarray
        offline: int16; stream: float32.
    sr : int
    stages : dict[str, np.ndarray]
        See the module docstring.
    """
    settings = settings_for(kind, params)  # unknown kinds and fields fail before any model loads
    models = ConverterModels.load(assets["model"], hubert=assets["hubert"], index=assets.get("index"),
                                  rmvpe=assets.get("rmvpe"))
    audio, sr = load_audio(input_path)
    if kind == "offline":
        res = convert_offline(models, prepare_input(audio, sr), settings, record_stages=True)
        return res.audio, res.sr, res.stages
    out, out_sr, conv = stream_file(models, audio, sr, settings, record=True)
    recs = conv.records
    stages = {"block_input_16k": np.stack([r["input_16k"] for r in recs]).astype(np.float32),
              "block_feats": np.stack([r["feats"] for r in recs]),
              "block_infer_out": np.stack([r["infer_out"] for r in recs]),
              "sola_offset": np.array([r["sola_offset"] for r in recs], dtype=np.int64)}
    if recs[0]["pitch"] is not None:
        stages["block_pitch"] = np.stack([r["pitch"] for r in recs])
        stages["block_pitchf"] = np.stack([r["pitchf"] for r in recs])
    return out, out_sr, stages


def make_case(outdir: str | os.PathLike, *, input_path: str | os.PathLike, kind: str, assets_spec: dict,
              params: dict, description: str = "", tolerances: dict | None = None,
              cache_dir: str | os.PathLike | None = None) -> Path:
    """Run rvc_lab on an input and store it as a reference case (see the module docstring)."""
    out = Path(outdir)
    assets = resolve_assets(assets_spec, cache_dir)
    audio, sr, stages = run_chain(kind, assets, params, input_path)
    import torch

    case = {
        "name": out.name,
        "description": description,
        "kind": kind,
        "input": "input.wav",
        "expected": "expected.wav",
        "stages": "stages.npz",
        "params": params,
        "assets": assets_spec,
        "asset_fingerprints": {k: fingerprint(v) for k, v in assets.items() if v},
        "tolerances": tolerances or DEFAULT_TOLERANCES,
        "produced_by": {
            "tool": f"rvc_lab {rvc_lab.__version__}", "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "date": datetime.date.today().isoformat(),
            "torch_threads": torch.get_num_threads(),
        },
        "output_sr": sr,
        "truth": (f"regression case: the expected output and stages were produced by rvc_lab "
                  f"{rvc_lab.__version__} itself; it guards against changes, it is not an upstream golden"),
    }
    with atomic_directory(out) as tmp:
        shutil.copyfile(input_path, tmp / "input.wav")
        write_wav_atomic(tmp / "expected.wav", audio, sr, subtype="PCM_16" if kind == "offline" else "FLOAT")
        np.savez_compressed(tmp / "stages.npz", **stages)
        (tmp / CASE_FILE).write_text(json.dumps(case, indent=2) + "\n")
    return out


def load_case(case_dir: str | os.PathLike) -> dict:
    p = Path(case_dir) / CASE_FILE
    if not p.is_file():
        raise SettingsError(f"{case_dir}: not a reference case (no {CASE_FILE})")
    return json.loads(p.read_text())


# ----------------------------------------------------------------------------- comparing
def audio_metrics(actual: np.ndarray, expected: np.ndarray, sr: int) -> dict:
    """Delay-aligned comparison of two outputs (see :func:`rvc_lab.metrics.compare.compare_audio`)."""
    return compare_audio(_as_float(actual), _as_float(expected), sr, align=True)


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.float64) / 32768.0 if x.dtype == np.int16 else x.astype(np.float64)


def judge(metrics: dict, tolerances: dict) -> list[dict]:
    """Rows (metric, value, bound, passed) for every metric that has a tolerance.

    A bound is a dict with any of ``max``, ``min``, ``max_abs``; a NaN value fails unless the
    bound says ``allow_nan``; a metric that was not computed fails.
    """
    rows = []
    for name, bound in tolerances.items():
        value = metrics.get(name)
        if value is None or (np.isnan(value) and not bound.get("allow_nan")):
            ok = False
        elif np.isnan(value):
            ok = True
        else:
            ok = (value <= bound.get("max", np.inf)) and (value >= bound.get("min", -np.inf)) and (
                abs(value) <= bound.get("max_abs", np.inf))
        rows.append({"metric": name, "value": None if value is None else float(value), "bound": _bound_text(bound),
                     "passed": bool(ok)})
    return rows


def _bound_text(bound: dict) -> str:
    sym = {"max": "<=", "min": ">=", "max_abs": "|x| <="}
    return ", ".join(f"{sym[k]} {v:g}" for k, v in bound.items() if k in sym)


def stage_rows(actual: dict, expected: dict, kind: str, tolerances: dict) -> list[dict]:
    """Per-stage rows in chain order (relative L2 against each stage's bound).

    ``tolerances`` maps stage names to the largest relative L2 error (``"default"`` for the rest);
    integer stages (coarse pitch, SOLA offsets) get their own, usually tighter, bounds.
    """
    shared = {k: v for k, v in actual.items() if k in expected}
    order = [k for k in STAGE_ORDER[kind] if k in expected]  # a no-f0 voice has no pitch stages
    df = compare_stages(shared, expected, order=order, rtol=float(tolerances.get("default", 1e-4)),
                        tolerances={k: v for k, v in tolerances.items() if k != "default"})
    return [{"stage": r.stage, "metric": "rel_l2" if r.status in ("ok", "diverged") else r.status,
             "value": float(r.rel_l2), "bound": f"<= {r.tolerance:g}", "passed": r.status == "ok"}
            for r in df.itertuples()]


def check_case(case_dir: str | os.PathLike, cache_dir=None):
    """Re-run one case and compare with its expected output and stages.

    Returns
    -------
    pandas.DataFrame
        Columns case, stage ("audio" or a stage name), metric, value, bound, passed.
    """
    import pandas as pd
    import soundfile as sf

    d = Path(case_dir)
    case = load_case(d)
    assets = resolve_assets(case["assets"], cache_dir)
    for k, want in case.get("asset_fingerprints", {}).items():
        if assets.get(k) and fingerprint(assets[k]) != want:
            log.warning("%s: asset %s (%s) differs from the one the case was made with", d.name, k, assets[k])
    audio, sr, stages = run_chain(case["kind"], assets, case["params"], d / case["input"])
    expected, esr = sf.read(d / case["expected"], dtype="int16" if case["kind"] == "offline" else "float32")
    tol = case["tolerances"]
    if sr != esr:
        rows = [{"stage": "audio", "metric": "sample_rate", "value": sr, "bound": f"== {esr}", "passed": False}]
    else:
        rows = [{"stage": "audio", **r} for r in judge(audio_metrics(audio, expected, sr), tol["audio"])]
    if (d / case.get("stages", "stages.npz")).exists():
        with np.load(d / case["stages"]) as z:
            golden = {k: z[k] for k in z.files}
        rows += stage_rows(stages, golden, case["kind"], tol.get("stages", {}))
    df = pd.DataFrame(rows)
    df.insert(0, "case", d.name)
    return df


def find_cases(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    if (root / CASE_FILE).exists():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/{CASE_FILE}"))


def check_cases(root: str | os.PathLike = "reference_cases", cache_dir=None):
    """:func:`check_case` for every case under ``root``; one DataFrame."""
    import pandas as pd

    cases = find_cases(root)
    if not cases:
        raise SettingsError(f"{root}: no reference cases found (directories with {CASE_FILE})")
    return pd.concat([check_case(c, cache_dir) for c in cases], ignore_index=True)


def compare_external(wav: str | os.PathLike, case_dir: str | os.PathLike, stages_npz: str | None = None) -> dict:
    """Compare an output made elsewhere (upstream, a port, another machine) with a case.

    The external wav is delay-aligned to ``expected.wav`` before measuring; when ``stages_npz``
    holds stage vectors under the case's names, the per-stage divergence and the first failing
    stage (chain order) are reported too.

    Returns
    -------
    dict
        ``metrics`` (audio metrics), ``audio_rows`` (judged), ``stage_rows``, ``first_divergent_stage``.
    """
    import soundfile as sf


    d = Path(case_dir)
    case = load_case(d)
    actual, sr = load_audio(wav)
    expected, esr = sf.read(d / case["expected"], dtype="float32")
    if sr != esr:
        log.info("external output at %d Hz resampled to the case's %d Hz", sr, esr)
        actual = resample_offline(actual, sr, esr)
    metrics = audio_metrics(actual, expected, esr)
    result = {"metrics": metrics, "audio_rows": judge(metrics, case["tolerances"]["audio"]), "stage_rows": [],
              "first_divergent_stage": None}
    if stages_npz:
        with np.load(stages_npz) as z:
            ext = {k: z[k] for k in z.files}
        with np.load(d / case["stages"]) as z:
            golden = {k: z[k] for k in z.files}
        rows = stage_rows(ext, {k: v for k, v in golden.items() if k in ext}, case["kind"],
                          case["tolerances"].get("stages", {}))
        result["stage_rows"] = rows
        result["first_divergent_stage"] = next((r["stage"] for r in rows if not r["passed"]), None)
    return result


# ----------------------------------------------------------------------------- upstream goldens
#: Golden conversions of ../shared/parity that become reference cases (their ``kind`` there)
UPSTREAM_CASES = (
    "offline_v2_40k_rmvpe_synth__zero", "offline_v2_40k_rmvpe_synth__seeded",
    "realtime_v2_40k_rmvpe_synth_dev48k__zero", "realtime_v2_40k_rmvpe_synth_dev48k__seeded",
    "realtime_v2_40k_fcpe_speech_dev48k_formant__zero", "realtime_v2_40k_fcpe_speech_dev48k_formant__seeded",
)
#: Golden array -> case stage name (the offline generator output is trimmed of its padding)
UPSTREAM_STAGES = {
    "offline": {"f0_hz_full": "f0_hz", "f0_coarse_full": "f0_coarse", "vc_chunk0": "generator_output"},
    "stream": {"block_pitch": "block_pitch", "block_pitchf": "block_pitchf",
               "block_rvc_infer_out": "block_infer_out", "sola_offset": "sola_offset"},
}


def _offline_params(p: dict, noise: dict) -> dict:
    """OfflineSettings fields of an upstream ``VC.vc_single`` case."""
    seed = noise.get("torch_manual_seed")
    return {"f0_method": p["f0_method"], "pitch": p["f0_up_key"], "index_rate": p["index_rate"],
            "rms_mix_rate": p["rms_mix_rate"], "protect": p["protect"], "resample_sr": p["resample_sr"],
            "sid": p["sid"], "x_pad": p["x_pad"], "x_query": p["x_query"], "x_center": p["x_center"],
            "x_max": p["x_max"], "noise": seed is not None, "seed": seed}


def _stream_params(p: dict, noise: dict) -> dict:
    """StreamSettings fields of an upstream ``realtime_gui.py`` case (upstream's GUI names)."""
    if p["sr_type"] != "sr_device":
        raise SettingsError(f"upstream case with sr_type {p['sr_type']!r}: only sr_device is supported")
    seed = noise.get("base_seed")
    return {"f0_method": p["f0method"], "pitch": p["pitch"], "formant": p["formant"], "index_rate": p["index_rate"],
            "rms_mix_rate": p["rms_mix_rate"], "threshold": p["threhold"], "block_time": p["block_time"],
            "crossfade_time": p["crossfade_time"], "extra_time": p["extra_time"],
            "input_noise_reduce": p["I_noise_reduce"], "output_noise_reduce": p["O_noise_reduce"],
            "output_rate": "stream", "noise": seed is not None, "seed": seed}


def _golden_stages(kind: str, arrays: dict, tgt_sr: int) -> dict:
    """Upstream's arrays under the case's stage names (see :data:`UPSTREAM_STAGES`); a golden stores some only."""
    stages = {name: arrays[key] for key, name in UPSTREAM_STAGES[kind].items() if key in arrays}
    if "generator_output" in stages:  # Pipeline.vc returns the chunk with t_pad_tgt = 1 s on both sides
        stages["generator_output"] = stages["generator_output"][tgt_sr:-tgt_sr]
    return stages


def case_from_upstream(parity_dir: str | os.PathLike, name: str, outdir: str | os.PathLike) -> Path:
    """Turn one of upstream's golden conversions (``../shared/parity/cases/<name>``) into a reference case.

    The expected output and stage vectors are upstream RVC's own (``truth`` says so); the
    assets are the goldens' seeded random weights (``assets.source == "parity"``, regenerated by
    ``make_assets.py`` into the cache).  Audio is judged against upstream's 1e-4 relative L2.

    Returns
    -------
    Path
        The case directory ``outdir``.
    """
    src = Path(parity_dir) / "cases" / name
    if not (src / "meta.json").is_file():
        raise SettingsError(f"{src}: no upstream golden case there")
    meta = json.loads((src / "meta.json").read_text())
    kind = {"offline": "offline", "realtime": "stream"}.get(meta["kind"])
    if kind is None or not (src / "out.wav").is_file():
        raise SettingsError(f"{name}: golden of kind {meta['kind']!r} is not a conversion")
    p = meta["params"]
    params = (_offline_params if kind == "offline" else _stream_params)(p, meta["noise"])
    settings_for(kind, params).validate()
    model, index = (p["model"], p["index"]) if kind == "offline" else (p["pth_path"], p["index_path"])
    spec = {"source": "parity", "model": model, "index": index, "hubert": "assets/hubert_base",
            "rmvpe": "assets/rmvpe/rmvpe.pt"}
    with np.load(src / "data.npz") as z:
        arrays = {k: z[k] for k in z.files}
    tgt_sr = p["out_samplerate"] if kind == "offline" else p["derived"]["tgt_sr"]
    tolerances = json.loads(json.dumps(DEFAULT_TOLERANCES))
    tolerances["audio"]["rel_l2"] = {"max": 1e-4}  # upstream's own target
    case = {
        "name": Path(outdir).name, "description": f"upstream RVC golden {name}: {meta['description']}",
        "kind": kind, "input": "input.wav", "expected": "expected.wav", "stages": "stages.npz",
        "params": params, "assets": spec, "asset_fingerprints": {}, "upstream_asset_sha256": meta["assets"],
        "tolerances": tolerances,
        "produced_by": {"tool": "upstream RVC (RVC-Project/Retrieval-based-Voice-Conversion-WebUI)",
                        "commit": meta["upstream_commit"], "environment": meta["environment"]},
        "output_sr": tgt_sr if kind == "offline" else p["device_samplerate"],
        "truth": (f"upstream golden: expected.wav and stages.npz are upstream RVC's output at commit "
                  f"{meta['upstream_commit']} (../shared/parity/cases/{name}), not rvc_lab's"),
    }
    with atomic_directory(Path(outdir)) as tmp:
        shutil.copyfile(Path(parity_dir) / meta["inputs"]["audio"]["file"], tmp / "input.wav")
        shutil.copyfile(src / "out.wav", tmp / "expected.wav")
        np.savez_compressed(tmp / "stages.npz", **_golden_stages(kind, arrays, tgt_sr))
        (tmp / CASE_FILE).write_text(json.dumps(case, indent=2) + "\n")
    return Path(outdir)


def cases_from_upstream(parity_dir: str | os.PathLike, outdir: str | os.PathLike, names=UPSTREAM_CASES) -> list[Path]:
    """:func:`case_from_upstream` for each golden conversion present, into ``outdir/upstream_<name>``."""
    present = [n for n in names if (Path(parity_dir) / "cases" / n / "out.wav").is_file()]
    if not present:
        raise SettingsError(f"{parity_dir}: none of the upstream golden conversions found")
    return [case_from_upstream(parity_dir, n, Path(outdir) / f"upstream_{n}") for n in present]


# ----------------------------------------------------------------------------- command line
def format_table(df) -> str:
    """Readable fixed-width table of check rows."""
    view = df.copy()
    view["value"] = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in view["value"]]
    view["passed"] = ["PASS" if p else "FAIL" for p in view["passed"]]
    return view.to_string(index=False)


def main_check(a) -> int:
    """``rvc-lab check [CASES_DIR]``: exit 0 only when every case passes."""
    df = check_cases(a.cases_dir)
    print(format_table(df))
    failed = df.loc[~df.passed.astype(bool), "case"].unique()
    n = df.case.nunique()
    print(f"\n{n - len(failed)} of {n} cases passed" + (f"; failed: {', '.join(failed)}" if len(failed) else ""))
    return 0 if len(failed) == 0 else 1


def parse_params(text: str, kind: str) -> dict:
    """The ``--params`` JSON of ``rvc-lab reference make``, checked against the settings dataclass.

    Parameters
    ----------
    text : str
        A JSON object of :class:`OfflineSettings` (``kind="offline"``) or :class:`StreamSettings`
        (``kind="stream"``) fields.
    kind : {"offline", "stream"}

    Returns
    -------
    dict
        The parsed fields (validated: a settings object built from them passes ``validate``).

    Raises
    ------
    SettingsError
        When the text is not JSON, not an object, names an unknown field or gives an impossible value.
    """
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"--params is not valid JSON ({exc}): give an object such as "
                            "'{\"f0_method\": \"pm\", \"pitch\": 2}'") from None
    if not isinstance(params, dict):
        raise SettingsError(f"--params must be a JSON object of settings fields, got {type(params).__name__}")
    settings_for(kind, params).validate()
    return params


def settings_for(kind: str, params: dict):
    """:class:`OfflineSettings` or :class:`StreamSettings` from a case's ``params`` (unknown fields refused)."""
    cls = {"offline": OfflineSettings, "stream": StreamSettings}.get(kind)
    if cls is None:
        raise SettingsError(f"case kind {kind!r} unknown: use 'offline' or 'stream'")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise SettingsError(f"{kind} settings have no field(s) {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(known)}")
    return cls(**params)


def assets_spec_from_args(r) -> dict:
    """The ``assets`` entry of a case from ``reference make``'s ``--demo-seed`` or file options."""
    if r.demo_seed is not None:
        return {"source": "demo", "seed": r.demo_seed, "model": r.demo_voice,
                "index": f"{r.demo_voice}_index" if r.index != "none" else None}
    if not (r.model and r.hubert):
        raise SettingsError("reference make: give --demo-seed, or --model and --hubert")
    return {"source": "files", "model": r.model, "index": r.index, "hubert": r.hubert, "rmvpe": r.rmvpe}


def main_reference_make(r) -> int:
    """``rvc-lab reference make OUTDIR --input IN.wav ...``: run rvc_lab and store a case."""
    params = parse_params(r.params, r.kind)
    spec = assets_spec_from_args(r)
    if not Path(r.input).is_file():
        raise SettingsError(f"--input {r.input}: no such file")
    path = make_case(r.outdir, input_path=r.input, kind=r.kind, assets_spec=spec, params=params,
                     description=r.description)
    print(f"wrote reference case {path}")
    return 0


def main_reference_compare(r) -> int:
    """``rvc-lab reference compare CASE_DIR OUT.wav [--stages S.npz]``: exit 0 only when it matches."""
    import pandas as pd

    res = compare_external(r.wav, r.case_dir, r.stages)
    print(format_table(pd.DataFrame(res["audio_rows"])))
    if res["stage_rows"]:
        print(format_table(pd.DataFrame(res["stage_rows"])))
        print(f"first divergent stage: {res['first_divergent_stage'] or 'none'}")
    ok = all(row["passed"] for row in res["audio_rows"]) and res["first_divergent_stage"] is None
    return 0 if ok else 1


def main_reference_upstream(r) -> int:
    """``rvc-lab reference upstream OUTDIR [--parity-dir D]``: upstream's goldens as reference cases."""
    for path in cases_from_upstream(r.parity_dir or default_parity_dir(), r.outdir):
        print(f"wrote reference case {path}")
    return 0
