"""The reference C++ host (ports/cpp) against rvc_lab, through ``rvc-lab port-check``.

Truth: the shipped reference cases ``offline_v2_40k_pm_tone`` and ``stream_v2_40k_fcpe_tone48k``
(rvc_lab's own stages, checked against upstream's goldens when they were made); the host starts
from the cases' stage inputs and must land within the port targets at every stage.  The host is built once per source and torch
version into the cache, and the bundle is the demo voice's cache entry that the quick report and
``--backend`` runs on it already export (``cached_bundle`` with the case's files), so this file
adds no export of its own.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rvc_lab import cli
from rvc_lab.port.check import TARGETS, port_check

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "reference_cases"
CASE = CASES / "offline_v2_40k_pm_tone"
STREAM_CASE = CASES / "stream_v2_40k_fcpe_tone48k"  # the same voice: the same bundle
OTHER_VOICES = [CASES / "offline_v1_48k_fcpe_tone48k", CASES / "offline_v2_32k_nof0_tone"]


@pytest.fixture(scope="session")
def host_binary():
    """The C++ host, compiled once into the cache (about 30-60 s the first time)."""
    from rvc_lab.port.build import build_host

    if shutil.which("g++") is None:
        pytest.skip("g++ is missing: apt-get install build-essential (bash scripts/system-packages.sh)")
    return build_host()


@pytest.fixture(scope="session")
def case_bundle(demo_assets):
    """The bundle of the case's voice, index and RMVPE (the cache entry the quick report exports too)."""
    from rvc_lab.export.bundle import cached_bundle
    from rvc_lab.reference import load_case, resolve_assets

    a = resolve_assets(load_case(CASE)["assets"])
    return cached_bundle(a["model"], a["hubert"], a["index"], rmvpe=a["rmvpe"])


def test_host_matches_rvc_lab_on_every_stage(host_binary, case_bundle):
    results, code = port_check([CASE, *OTHER_VOICES], case_bundle, host_binary)
    by_case = {r.case: r for r in results}
    ran = by_case[CASE.name]
    for r in ran.rows:
        print(f"{CASE.name} {r['stage']}: C++ vs rvc_lab rel L2 {r['value']:.3e} (target {TARGETS[r['stage']]:g})")
    assert ran.status == "ok", ran.note
    offline_stages = ("content_features", "blended_features", "generator_output")
    assert {r["stage"]: r["value"] <= TARGETS[r["stage"]] for r in ran.rows} == {s: True for s in offline_stages}
    # the other voices are listed as not applicable, not failed
    assert {r.status for n, r in by_case.items() if n != CASE.name} == {"n/a"}
    assert code == 0


@pytest.mark.slow
def test_host_matches_rvc_lab_block_by_block(host_binary, case_bundle):
    """The streaming case: one realtime call per block (22 blocks) from each block's 16 kHz ring."""
    (res,), code = port_check([STREAM_CASE], case_bundle, host_binary)
    for r in res.rows:
        print(f"{STREAM_CASE.name} {r['stage']}: C++ vs rvc_lab rel L2 {r['value']:.3e} (target {TARGETS[r['stage']]:g})")
    assert res.status == "ok", res.note
    assert [r["stage"] for r in res.rows] == ["block_feats", "block_infer_out"]
    assert all(r["value"] <= TARGETS[r["stage"]] for r in res.rows) and code == 0


def _copy_case(tmp_path: Path, **params) -> Path:
    dst = tmp_path / CASE.name
    shutil.copytree(CASE, dst)
    case = json.loads((dst / "case.json").read_text())
    case["params"].update(params)
    (dst / "case.json").write_text(json.dumps(case))
    return dst


def test_wrong_index_rate_diverges_at_the_blend(host_binary, case_bundle, tmp_path, capsys):
    case = _copy_case(tmp_path, index_rate=0.75)  # the stages were made with 0.5
    assert cli.main(["port-check", "--bundle", str(case_bundle), str(case)]) == 1
    out = capsys.readouterr().out
    assert "first divergent stage: blended_features" in out
    assert out.count("PASS") == 1  # content features still match


def test_tampered_bundle_is_an_error(host_binary, case_bundle, tmp_path, capsys):
    """The host checks the manifest's sha256 itself (the first file in name order, so it fails fast)."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for f in case_bundle.iterdir():
        if f.name != "manifest.json":
            (bundle / f.name).symlink_to(f)
    manifest = json.loads((case_bundle / "manifest.json").read_text())
    first = sorted(manifest["sha256"])[0]
    manifest["sha256"][first] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert cli.main(["port-check", "--bundle", str(bundle), str(CASE)]) == 2
    assert f"{first}: sha256 does not match" in capsys.readouterr().out
