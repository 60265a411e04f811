"""Writing a torch module as TorchScript (traced) or ONNX, and loading them back.

Both exporters trace one example call, so every module handed here must compute its sizes
and window positions with tensor ops on its inputs (never Python ints taken from shapes that
change): the callers' tests run the files at other lengths than the example's.
"""
from __future__ import annotations

import importlib
import os
import warnings

import torch
from torch import nn

from rvc_lab.errors import SettingsError

ONNX_OPSET = 17
FORMATS = ("torchscript", "onnx")
SUFFIX = {"torchscript": ".ts", "onnx": ".onnx"}
#: Bundle precisions and the torch dtype their models compute in (one bundle holds one).
PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: Manifest dtype names of torch dtypes.
DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.int64: "int64"}
_NAMED_DTYPES = {name: dtype for dtype, name in DTYPE_NAMES.items()}


def cast_to_spec(inputs, spec_inputs: list[dict]) -> tuple:
    """Cast each floating tensor of ``inputs`` to the dtype its manifest entry names.

    Parameters
    ----------
    inputs : sequence of torch.Tensor, in the order of ``spec_inputs``
    spec_inputs : list of dict
        A manifest model's ``"inputs"`` (``{"name", "dtype", "shape"}``).

    Returns
    -------
    tuple of torch.Tensor; integer inputs are left as they are.
    """
    return tuple(t.to(_NAMED_DTYPES[entry["dtype"]]) if t.is_floating_point() else t
                 for t, entry in zip(inputs, spec_inputs))


def save_torchscript(module: nn.Module, example: tuple, path: os.PathLike) -> None:
    """Trace ``module`` on ``example`` and save it (``torch.jit.load`` in Python, libtorch or tch)."""
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about every shape read; the callers check other lengths themselves
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
    torch.jit.save(traced, os.fspath(path))


def save_onnx(module: nn.Module, example: tuple, path: os.PathLike, input_names: list[str],
              output_names: list[str], dynamic_axes: dict) -> None:
    """Export ``module`` to ONNX (opset :data:`ONNX_OPSET`, TorchScript-based exporter)."""
    require_onnx()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, os.fspath(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=ONNX_OPSET, dynamo=False)


def require_onnx():
    """Import onnxruntime or raise a :class:`SettingsError` saying how to install it."""
    try:
        importlib.import_module("onnx")  # the exporter needs it; only onnxruntime is used here
        import onnxruntime
    except ImportError as e:
        raise SettingsError(
            f"the onnx format/backend needs onnx and onnxruntime ({e.name} is missing): "
            "pip install -e '.[export]' (or: pip install onnx onnxruntime)") from e
    return onnxruntime


def onnx_session(path: os.PathLike, threads: int | None = None):
    """An onnxruntime CPU session for ``path`` (``threads``: intra-op threads, torch's by default)."""
    ort = require_onnx()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    # onnxruntime's pool spins after each run by default, taking the cores from the torch stages
    # that follow (F0, resampling, SOLA ran 1.5-40x slower beside it in bench/stream_bench.py)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(os.fspath(path), sess_options=opts, providers=["CPUExecutionProvider"])


def check_formats(formats) -> tuple[str, ...]:
    """Validate a list (or comma string) of formats -> tuple in :data:`FORMATS` order."""
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise SettingsError(f"--formats {','.join(formats) or '(empty)'}: choose from {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in formats)
