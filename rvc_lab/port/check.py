"""``rvc-lab port-check``: the reference C++ host on reference cases, stage by stage against rvc_lab.

For each case the host (``ports/cpp``, built by :mod:`rvc_lab.port.build`) reads the case's
stage inputs (offline: ``encoder_input``, ``f0_hz``, ``f0_coarse``; streaming, one call per block:
``block_input_16k``, ``block_pitch``, ``block_pitchf``) and writes the stages it computes; those
are compared with the case's ``stages.npz`` by the reference-case comparison
(:func:`rvc_lab.reference.stage_rows`, relative L2) against the port targets below, and the first
stage over its target is named.

A case is *not applicable* (listed, not a failure) when it belongs to another voice than
``--bundle``, needs an index the bundle lacks, is chunked (offline, longer than ``x_max``), shifts
formants (streaming: the stretch is caller-side) or uses unseeded noise.  Without ``--bundle`` each case's voice is exported once into the cache
(:func:`rvc_lab.export.bundle.cached_bundle`, the entry ``--backend torchscript`` runs share).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvc_lab.errors import RVCLabError, SettingsError
from rvc_lab.reference import find_cases, load_case, resolve_assets, stage_rows

log = logging.getLogger(__name__)

#: Largest relative L2 error per stage (fp32): features as the exported graphs' self-check, audio looser.
TARGETS = {"content_features": 1e-5, "blended_features": 1e-5, "generator_output": 1e-4,
           "block_feats": 1e-5, "block_infer_out": 1e-4}
#: Stage vectors the host reads from a case, by kind: (audio, coarse pitch, pitch in Hz).
INPUTS = {"offline": ("encoder_input", "f0_coarse", "f0_hz"),
          "stream": ("block_input_16k", "block_pitch", "block_pitchf")}
HOST_TIMEOUT_S = 600

OK, DIVERGED, ERROR = 0, 1, 2


class NotApplicable(Exception):
    """The case cannot run on this bundle/host; the message says why."""


@dataclass
class CaseResult:
    """One case's outcome: ``status`` "ok", "diverged", "n/a" or "error"; ``rows`` as
    :func:`rvc_lab.reference.stage_rows`; ``note`` the reason (n/a, error) or first divergent stage."""

    case: str
    status: str
    rows: list
    note: str = ""


def _settings(case: dict):
    from rvc_lab.convert.offline import OfflineSettings
    from rvc_lab.convert.streaming import StreamSettings

    if case["kind"] not in INPUTS:
        raise SettingsError(f"case kind {case['kind']!r} unknown")
    try:
        return (OfflineSettings if case["kind"] == "offline" else StreamSettings)(**case["params"])
    except TypeError as e:
        raise SettingsError(f"case params: {e}") from None


def _bundle_voice(bundle: Path) -> dict:
    """The manifest's voice and index entries, read plainly: the host verifies the hashes itself."""
    try:
        m = json.loads((bundle / "manifest.json").read_text())
        return {"source_sha256": m["voice"].get("source_sha256"), "has_index": bool(m.get("index"))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise SettingsError(f"{bundle}: not a readable rvc_lab bundle ({e})") from None


def _applicable(case: dict, golden: dict, settings, bundle_voice: dict | None) -> None:
    """Raise :class:`NotApplicable` naming the reason a case cannot run here."""
    want = case.get("asset_fingerprints", {}).get("model")
    if bundle_voice is not None and want and bundle_voice["source_sha256"] != want:
        raise NotApplicable("case of another voice than the bundle's")
    if bundle_voice is not None and case["assets"].get("index") and settings.index_rate > 0 and not bundle_voice["has_index"]:
        raise NotApplicable("the case blends an index and the bundle has none")
    if settings.noise and settings.seed is None:
        raise NotApplicable("unseeded generator noise cannot be repeated")
    if case["kind"] == "stream" and settings.formant != 0:
        raise NotApplicable("formant shift: its output stretch is caller-side, not in the host")
    if case["kind"] == "offline" and golden["input_16k"].size + 160 > 16000 * settings.x_max:
        raise NotApplicable(f"input longer than x_max={settings.x_max} s is chunked; the driver runs one chunk")


def _host_options(case: dict, case_dir: Path, settings) -> list[str]:
    """The driver's options for this case's settings (streaming: the block geometry in frames)."""
    seed = str(-1 if not settings.noise else settings.seed)
    if case["kind"] == "offline":
        return ["--index-rate", repr(float(settings.index_rate)), "--protect", repr(float(settings.protect)),
                "--sid", str(settings.sid), "--x-pad", str(settings.x_pad), "--seed", seed]
    import soundfile as sf

    from rvc_lab.convert.streaming import StreamGeometry

    # frame counts are whole 10 ms frames: the same at the file's rate and the voice's
    g = StreamGeometry.from_settings(settings, sf.info(str(case_dir / case["input"])).samplerate)
    return ["--stream", "--skip-head", str(g.skip_head), "--return-length", str(g.return_length),
            "--index-rate", repr(float(settings.index_rate)), "--sid", str(settings.sid), "--seed", seed]


def run_host(binary: Path, bundle: Path, inputs: dict, options: list[str], workdir: Path) -> dict:
    """Run the host once; returns its stage arrays by name.

    Raises
    ------
    RVCLabError
        The host exited non-zero (its message attached) or timed out.
    """
    in_dir, out_dir = workdir / "in", workdir / "out"
    in_dir.mkdir()
    out_dir.mkdir()
    for name, arr in inputs.items():
        np.save(in_dir / f"{name}.npy", arr, allow_pickle=False)
    cmd = [str(binary), "--bundle", str(bundle), "--inputs", str(in_dir), "--out", str(out_dir), *options]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=HOST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RVCLabError(f"the C++ host took longer than {HOST_TIMEOUT_S} s") from None
    if res.returncode != 0:
        msg = (res.stderr.strip() or res.stdout.strip() or "no message").splitlines()[-1]
        raise RVCLabError(f"C++ host exit {res.returncode}: {msg}")
    return {p.stem: np.load(p, allow_pickle=False) for p in sorted(out_dir.glob("*.npy"))}


def check_case(case_dir: Path, binary: Path, bundle: Path | None = None) -> CaseResult:
    """One case through the host; never raises for the case's own problems (status "error")."""
    name = case_dir.name
    try:
        case = load_case(case_dir)
        with np.load(case_dir / case.get("stages", "stages.npz")) as z:
            golden = {k: z[k] for k in z.files}
        settings = _settings(case)
        try:
            _applicable(case, golden, settings, None if bundle is None else _bundle_voice(bundle))
        except NotApplicable as e:
            return CaseResult(name, "n/a", [], str(e))
        audio_key, coarse_key, hz_key = INPUTS[case["kind"]]
        f0_voice = coarse_key in golden
        missing = [k for k in (audio_key, coarse_key, hz_key) if k not in golden and (k == audio_key or f0_voice)]
        if missing:
            raise SettingsError(f"stages.npz lacks {', '.join(missing)} (re-make the case with this rvc_lab)")
        if bundle is None:
            from rvc_lab.export.bundle import cached_bundle

            a = resolve_assets(case["assets"])
            bundle = cached_bundle(a["model"], a["hubert"], a.get("index"), rmvpe=a.get("rmvpe"))
        inputs = {audio_key: golden[audio_key].astype(np.float32)}
        if f0_voice:
            inputs[coarse_key] = golden[coarse_key].astype(np.int64)
            inputs[hz_key] = golden[hz_key]
        with tempfile.TemporaryDirectory(prefix="port-check-") as tmp:
            actual = run_host(binary, Path(bundle), inputs, _host_options(case, case_dir, settings), Path(tmp))
    except (RVCLabError, OSError, ValueError, KeyError) as e:
        return CaseResult(name, "error", [], str(e))
    expected = {k: golden[k] for k in TARGETS if k in golden}
    rows = stage_rows(actual, expected, case["kind"], {"default": max(TARGETS.values()), **TARGETS})
    first = next((r["stage"] for r in rows if not r["passed"]), None)
    return CaseResult(name, "diverged" if first else "ok", rows, f"first divergent stage: {first}" if first else "")


def port_check(cases, bundle: os.PathLike | None = None, binary: Path | None = None) -> tuple[list[CaseResult], int]:
    """Every case under ``cases`` (folders or case roots) through the host.

    Returns
    -------
    results : list of CaseResult
    exit_code : int
        0 when at least one case ran and all that ran are within target, 1 on a divergence, 2 on
        an error (or when no case applied).
    """
    from rvc_lab.port.build import build_host

    dirs = [d for c in cases for d in find_cases(c)]
    if not dirs:
        raise SettingsError(f"no reference cases found in {', '.join(map(str, cases))}")
    if bundle is not None and not Path(bundle).is_dir():
        raise SettingsError(f"--bundle {bundle}: not a folder")
    binary = binary or build_host()
    results = [check_case(d, binary, Path(bundle) if bundle else None) for d in dirs]
    statuses = {r.status for r in results}
    if "error" in statuses or not statuses & {"ok", "diverged"}:
        return results, ERROR
    return results, DIVERGED if "diverged" in statuses else OK


def format_results(results: list[CaseResult]) -> str:
    """Fixed-width table: one row per stage that ran, one per case that did not."""
    import pandas as pd

    rows = []
    for r in results:
        if not r.rows:
            rows.append({"case": r.case, "stage": "-", "rel_l2": "-", "target": "-", "result": r.status.upper(),
                         "note": r.note})
        for s in r.rows:
            rows.append({"case": r.case, "stage": s["stage"], "rel_l2": f"{s['value']:.3g}", "target": s["bound"],
                         "result": "PASS" if s["passed"] else "FAIL", "note": ""})
        if r.rows and r.note:
            rows[-1]["note"] = r.note
    return pd.DataFrame(rows).to_string(index=False)


def main_port_check(a) -> int:
    """``rvc-lab port-check [--bundle DIR] [CASES ...]``."""
    results, code = port_check(a.cases or ["reference_cases"], a.bundle)
    print(format_results(results))
    ran = [r for r in results if r.status in ("ok", "diverged")]
    print(f"\n{sum(r.status == 'ok' for r in ran)} of {len(ran)} cases within the port targets"
          + (f"; {len(results) - len(ran)} not run" if len(ran) < len(results) else ""))
    return code
