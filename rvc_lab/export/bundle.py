"""Export bundles: a voice's models as TorchScript/ONNX files plus a manifest any host can follow.

Layout (``docs/bundle.md`` explains how a host drives it)::

    BUNDLE/manifest.json            format "rvc_lab-bundle/1"; sha256 of every other file
    BUNDLE/content_encoder.{ts,onnx}
    BUNDLE/generator.{ts,onnx}
    BUNDLE/rmvpe.{ts,onnx}          (with an RMVPE file)
    BUNDLE/fcpe.{ts,onnx}           (f0 voices: torchfcpe's bundled model)
    BUNDLE/index_*.npy, added.index (with an index)

A bundle is written into a temporary folder beside its destination and renamed at the end
(never half-written), and only after the fp32 self-check (:mod:`rvc_lab.export.selfcheck`)
passed.  An fp16/bf16 bundle's content encoder and generator are cast to that dtype and measured
against eager fp32 instead (not gated): the figures are each model's ``"fidelity"`` entry, and a
runtime without kernels for the precision is an entry ``{"supported": false, "reason": ...}``.
Its RMVPE and FCPE stay float32 (the STFT and mel in their graphs) and keep the gate.  Loading checks the format, the hashes and the voice version before any file is read
as a model: bundles are untrusted input.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import torch

import rvc_lab
from rvc_lab.atomic import atomic_directory
from rvc_lab.errors import ModelFileError, SettingsError
from rvc_lab.export import content, generator, selfcheck
from rvc_lab.export import fcpe as fcpe_export
from rvc_lab.export import rmvpe as rmvpe_export
from rvc_lab.export.formats import (
    DTYPE_NAMES,
    FORMATS,
    ONNX_OPSET,
    PRECISION_DTYPES,
    SUFFIX,
    cast_to_spec,
    check_formats,
    require_onnx,
    save_onnx,
    save_torchscript,
)
from rvc_lab.export.index import write_index_arrays
from rvc_lab.f0.fcpe import load_bundled_fcpe
from rvc_lab.files.generator_weights import build_synthesizer
from rvc_lab.files.hubert import load_content_encoder
from rvc_lab.files.index import load_index
from rvc_lab.files.rmvpe import load_rmvpe
from rvc_lab.files.synthetic import default_cache_dir
from rvc_lab.files.voice import load_voice
from rvc_lab.reference import fingerprint

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "rvc_lab-bundle/1"
MANIFEST = "manifest.json"
PRECISIONS = tuple(PRECISION_DTYPES)


def file_sha256(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_export_args(out, formats, precision: str) -> tuple[Path, tuple[str, ...]]:
    """Validate the destination, formats and precision (before any model loads)."""
    formats = check_formats(formats)
    if precision not in PRECISIONS:
        raise SettingsError(f"--precision {precision!r}: bundles are written in {', '.join(PRECISIONS)}")
    if "onnx" in formats:
        require_onnx()
    out = Path(out)
    if out.exists() and not (out / MANIFEST).is_file():
        raise SettingsError(f"{out} exists and is not a bundle: refusing to replace it")
    return out, formats


def export_bundle(out, *, model, hubert, rmvpe=None, index=None, formats=FORMATS, precision: str = "fp32") -> dict:
    """Export a voice (+ content encoder, + RMVPE, + FCPE for f0 voices, + index) into ``out``; returns the manifest.

    Raises
    ------
    SettingsError
        Bad formats/precision, onnx missing, ``out`` an existing non-bundle folder.
    ModelFileError
        Unreadable voice, encoder or index (from their loaders).
    selfcheck.ExportCheckError
        An exported file misses the parity gate; nothing is written.
    """
    out, formats = check_export_args(out, formats, precision)
    voice = load_voice(model)
    feature_index = load_index(index, expected_dim=voice.feature_dim) if index else None
    encoder = load_content_encoder(hubert)
    synth = build_synthesizer(voice)
    rmvpe_module = rmvpe_export.RMVPEExport(load_rmvpe(rmvpe)).eval() if rmvpe else None
    # a voice without f0 runs no F0 method: no FCPE in its bundle
    fcpe_module = fcpe_export.FCPEExport(load_bundled_fcpe()).eval() if voice.if_f0 else None
    dtype = PRECISION_DTYPES[precision]
    with atomic_directory(out) as tmp:
        enc_ref = content.ContentEncoderExport(encoder, voice.version).eval()
        gen_ref = generator.streaming_generator(synth)
        # fp32 exports the eager modules themselves; fp16/bf16 casts copies (the fp32 ones stay the reference)
        enc_module = enc_ref if dtype == torch.float32 else copy.deepcopy(enc_ref).to(dtype)
        gen_module = gen_ref if dtype == torch.float32 else generator.streaming_generator(synth, dtype)
        models = {
            "content_encoder": _write_model(tmp, "content_encoder", enc_module, content.example_audio(),
                                            content.INPUT_NAMES, content.OUTPUT_NAMES, content.DYNAMIC_AXES,
                                            content.io_spec(voice.version, DTYPE_NAMES[dtype]), formats, precision),
            "generator": _write_model(tmp, "generator", gen_module, generator.example_inputs(gen_module, 50, 30, 15, 15),
                                      gen_module.input_names, ["audio"], generator.dynamic_axes(gen_module),
                                      generator.io_spec(gen_module), formats, precision),
        }
        if rmvpe_module is not None:
            models["rmvpe"] = _write_model(tmp, "rmvpe", rmvpe_module, rmvpe_export.example_audio(),
                                           rmvpe_export.INPUT_NAMES, rmvpe_export.OUTPUT_NAMES,
                                           rmvpe_export.DYNAMIC_AXES, rmvpe_export.io_spec(), formats, "fp32")
        if fcpe_module is not None:
            models["fcpe"] = _write_model(tmp, "fcpe", fcpe_module, fcpe_export.example_audio(),
                                          fcpe_export.INPUT_NAMES, fcpe_export.OUTPUT_NAMES, fcpe_export.DYNAMIC_AXES,
                                          fcpe_export.io_spec(fcpe_module.cents_table), formats, "fp32")
        if dtype == torch.float32:
            checks = selfcheck.check_bundle_files(tmp, models, enc_module, gen_module, formats, rmvpe_module,
                                                  fcpe_module)
        else:
            checks = selfcheck.check_bundle_files(tmp, models, enc_ref, gen_ref, formats, rmvpe_module, fcpe_module,
                                                  stages=("rmvpe", "fcpe"))
            fidelity = selfcheck.measure_bundle_files(tmp, models, enc_ref, gen_ref, formats, voice.tgt_sr)
            for stage, figures in fidelity.items():
                models[stage]["fidelity"] = figures
        index_entry = None
        if feature_index is not None:
            index_entry = write_index_arrays(feature_index, tmp)
            shutil.copyfile(index, tmp / "added.index")
            index_entry["faiss"] = "added.index"
        manifest = {
            "format": BUNDLE_FORMAT,
            "rvc_lab": rvc_lab.__version__,
            "precision": precision,
            "runtimes": _runtimes(formats),
            "sha256": {},
            "voice": {"version": voice.version, "sample_rate": voice.tgt_sr, "f0": bool(voice.if_f0),
                      "speakers": voice.n_speakers, "feature_dim": voice.feature_dim,
                      "samples_per_frame": voice.tgt_sr // 100, "inter_channels": synth.spec.inter_channels,
                      "source_sha256": fingerprint(model), "source": os.path.basename(os.fspath(model))},
            "models": models,
            "index": index_entry,
            "self_check": checks,
        }
        manifest["sha256"] = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote bundle %s (%s, %s)", out, ", ".join(formats), precision)
    return manifest


def _write_model(folder: Path, name: str, module, example, input_names, output_names, dynamic_axes,
                 spec: dict, formats, precision: str) -> dict:
    """Write ``module`` in each format; returns its manifest entry (``files``, ``precision``, ``spec``).

    ``example`` is float32 and cast to the dtypes of ``spec["inputs"]``.  A float16/bfloat16
    module that torch.onnx cannot export gets no ONNX file and a ``fidelity`` entry saying why.
    """
    example = cast_to_spec(example, spec["inputs"])
    files, unsupported = {}, {}
    for fmt in formats:
        path = folder / f"{name}{SUFFIX[fmt]}"
        if fmt == "torchscript":
            save_torchscript(module, example, path)
        else:
            try:
                save_onnx(module, example, path, input_names, output_names, dynamic_axes)
            except Exception as e:  # noqa: BLE001 - the exporter's own reason, whatever its type
                if precision == "fp32":
                    raise
                path.unlink(missing_ok=True)
                unsupported[fmt] = {"supported": False,
                                    "reason": f"torch.onnx.export {type(e).__name__}: {str(e).strip()[:300]}"}
                continue
        files[fmt] = path.name
    entry = {"files": files, "precision": precision, **spec}
    if unsupported:
        entry["fidelity"] = unsupported
    return entry


def _runtimes(formats) -> dict:
    out = {"torch": torch.__version__.split("+")[0]}
    if "onnx" in formats:
        out["onnxruntime"] = require_onnx().__version__
        out["onnx_opset"] = ONNX_OPSET
    return out


def read_manifest(bundle) -> dict:
    """The verified manifest of ``bundle``: format known, every file present with its sha256.

    Raises
    ------
    ModelFileError
        Not a bundle, unknown format, a file missing, changed or unlisted.
    """
    bundle = Path(bundle)
    path = bundle / MANIFEST
    if not path.is_file():
        raise ModelFileError(bundle, f"not an rvc_lab bundle (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelFileError(path, f"unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ModelFileError(path, f"format {manifest.get('format') if isinstance(manifest, dict) else None!r} "
                                   f"is not {BUNDLE_FORMAT!r}")
    hashes = manifest.get("sha256") or {}
    listed = set(hashes)
    present = {p.name for p in bundle.iterdir() if p.is_file() and p.name != MANIFEST}
    for name in sorted(listed - present):
        raise ModelFileError(bundle / name, "listed in the manifest but missing")
    for name in sorted(present - listed):
        raise ModelFileError(bundle / name, "not listed in the manifest (added after export?)")
    for name, digest in sorted(hashes.items()):
        if os.path.basename(name) != name:
            raise ModelFileError(path, f"file name {name!r} is not a plain name")
        actual = file_sha256(bundle / name)
        if actual != digest:
            raise ModelFileError(bundle / name, f"sha256 {actual[:12]}... does not match the manifest's {digest[:12]}...")
    return manifest


def _exporter_source_hash() -> str:
    """sha256 of the code that decides what an exported graph computes (export/ and models/)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted([*root.glob("export/*.py"), *root.glob("models/*.py")]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def bundle_cache_dir(model, hubert, index=None, formats=FORMATS, precision: str = "fp32", rmvpe=None) -> Path:
    """Where :func:`cached_bundle` keeps the bundle of these source files.

    Keyed by the content of the files, the formats and precision, the torch version and the
    exporter's own source, so a changed exporter never serves a stale bundle.
    """
    key = hashlib.sha256("|".join([fingerprint(model), fingerprint(hubert), fingerprint(index) if index else "-",
                                   fingerprint(rmvpe) if rmvpe else "-",
                                   ",".join(check_formats(formats)), precision, rvc_lab.__version__,
                                   torch.__version__, _exporter_source_hash()]).encode()).hexdigest()[:20]
    return default_cache_dir() / "bundles" / key


def cached_bundle(model, hubert, index=None, formats=FORMATS, precision: str = "fp32", rmvpe=None) -> Path:
    """The bundle of these files, exported once into the cache (reused while the files are the same)."""
    out = bundle_cache_dir(model, hubert, index, formats, precision, rmvpe)
    if (out / MANIFEST).is_file():
        try:
            read_manifest(out)
            return out
        except ModelFileError as e:
            log.warning("cached bundle %s is damaged (%s): exporting again", out, e)
    log.info("exporting %s once into the cache %s", model, out)
    export_bundle(out, model=model, hubert=hubert, rmvpe=rmvpe, index=index, formats=formats, precision=precision)
    return out
