"""Compute precision of the model stages, and the runtime copies of the models each one runs.

``"fp32"`` (the default) is the exact mode: the results stay within float32 rounding of
upstream's (parity tests: <= 1e-4 relative L2 on the streamed audio).  ``"bf16"`` is a fast,
approximate mode for CPUs with bfloat16 matrix units (AMX, AVX512-BF16): the matrix products
and convolutions of HuBERT and of the generator run in bfloat16 (8-bit mantissa, float32
accumulation), which changes the features by ~1e-2 relative; see ``tests/test_fast_modes.py``
and ``bench/speed_bench.py`` for the measured cost in fidelity and the speed-up.

The runtime copies are built once per model and precision and cached (keyed by the model
object and the version counters of its parameters, so weights modified in place are noticed):

* fp32: HuBERT runs as loaded; the generator's HiFi-GAN decoder runs channels-last
  (:class:`rvc_lab.models.channels_last.ChannelsLastDecoder`, same weights, ~10 % faster,
  ~2e-7 relative difference; the parity tests pass with it); every other part is shared
  with the loaded model.
* bf16: bfloat16 copies of both models (HuBERT's convolution front end and the decoder
  channels-last), run under ``torch.autocast``.  The NSF sine source stays float32: its
  phase, accumulated over thousands of samples, would drift in bfloat16.  Memory: about
  half the float32 model size on top of it.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import threading
import weakref

import torch
from torch import nn

from rvc_lab.cpu import cpu_model, has_native_bf16
from rvc_lab.errors import SettingsError
from rvc_lab.models.channels_last import ChannelsLastDecoder, LowPrecisionHubert, use_gemm_convs

log = logging.getLogger(__name__)

#: Compute precisions of :func:`rvc_lab.convert.stages.content_features` / ``run_generator``.
PRECISIONS = ("fp32", "bf16")

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def check_precision(precision: str) -> str:
    """Return ``precision`` if known, else raise :class:`SettingsError` naming the choices."""
    if precision not in PRECISIONS:
        raise SettingsError(f"precision {precision!r} unknown; choose one of {', '.join(PRECISIONS)}")
    return precision


def compute_dtype(precision: str) -> torch.dtype:
    """The torch dtype a precision computes in (float32 or bfloat16)."""
    return _DTYPES[check_precision(precision)]


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def autocast(precision: str, device: torch.device | str = "cpu"):
    """Context for running a stage at ``precision``: autocast to bfloat16, or nothing for fp32."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[precision])


def _weights_version(module: nn.Module) -> tuple:
    # in-place weight changes (load_state_dict, copy_) bump a tensor's version counter
    return tuple(p._version for p in module.parameters())


@functools.cache
def _warn_emulated_bf16() -> None:
    """Once per process: bf16 chosen on a CPU that has no bf16 arithmetic."""
    log.warning("bf16 on a CPU without AMX-BF16 or AVX512-BF16 (%s) is emulated and several times "
                "slower than fp32: use precision fp32 here", cpu_model())


def _cached(module: nn.Module, precision: str, build):
    with _LOCK:
        entry = _CACHE.setdefault(module, {})
        version = _weights_version(module)
        hit = entry.get(precision)
        if hit is not None and hit[0] == version:
            return hit[1]
        if precision == "bf16" and not has_native_bf16():
            _warn_emulated_bf16()
        runtime = build(module, _DTYPES[precision])
        entry[precision] = (version, runtime)
        log.debug("built %s runtime copy of %s", precision, type(module).__name__)
        return runtime


def _shallow_clone(module: nn.Module, **children: nn.Module) -> nn.Module:
    """A copy of ``module`` sharing every parameter, with some direct children replaced."""
    clone = copy.copy(module)
    clone._modules = dict(module._modules)
    clone._modules.update(children)
    return clone


def _low_precision_children(module: nn.Module, dtype: torch.dtype, **replaced: nn.Module) -> nn.Module:
    """A clone whose children are ``dtype`` copies, except those given in ``replaced``."""
    children = {name: (replaced[name] if name in replaced else copy.deepcopy(child).to(dtype))
                for name, child in module.named_children()}
    return _shallow_clone(module, **children)


def _build_encoder(encoder, dtype: torch.dtype):
    if dtype == torch.float32:
        # As loaded.  Channels-last gains nothing on the waveform convolutions in float32; on the
        # grouped positional convolution it saves ~5 ms per 2.81 s ring, but its 4e-7 change of
        # the features flips a near-tied SOLA offset in a parity case (periodic input): kept out.
        return encoder
    return LowPrecisionHubert(encoder, dtype)


def _build_generator(net_g, dtype: torch.dtype):
    dec = ChannelsLastDecoder(net_g.dec, dtype)
    if dtype == torch.float32:
        return _shallow_clone(net_g, dec=dec)
    clone = _low_precision_children(net_g, dtype, dec=dec)
    # text encoder and flow: short sequences, where matrix products beat oneDNN convolutions
    use_gemm_convs(clone.enc_p, dtype)
    use_gemm_convs(clone.flow, dtype)
    return clone


_state = threading.local()


@contextlib.contextmanager
def loaded_models():
    """Within this context (this thread), fp32 stages run the loaded modules themselves.

    No channels-last copies: the plain reference that the fp32 runtime copies are checked and
    timed against (``tests/test_fast_modes.py``, ``bench/speed_bench.py``).
    """
    previous = getattr(_state, "loaded", False)
    _state.loaded = True
    try:
        yield
    finally:
        _state.loaded = previous


def _exported(model, precision: str) -> bool:
    """True for models that run an exported file (:mod:`rvc_lab.export.backends`): used as they are."""
    if not getattr(model, "exported", False):
        return False
    if precision != "fp32":
        raise SettingsError(f"precision {precision!r} applies to the torch backend; an exported "
                            f"{model.backend} model runs at the precision it was exported in "
                            f"({getattr(model, 'precision', 'fp32')})")
    return True


def runtime_encoder(encoder, precision: str = "fp32"):
    """The HuBERT to run at ``precision`` (fp32: shares every weight with ``encoder``)."""
    check_precision(precision)
    if _exported(encoder, precision):
        return encoder
    if precision == "fp32" and getattr(_state, "loaded", False):
        return encoder
    return _cached(encoder, precision, _build_encoder)


def runtime_generator(net_g, precision: str = "fp32"):
    """The generator to run at ``precision`` (a :class:`Synthesizer` with a channels-last decoder)."""
    check_precision(precision)
    if _exported(net_g, precision):
        return net_g
    if precision == "fp32" and getattr(_state, "loaded", False):
        return net_g
    return _cached(net_g, precision, _build_generator)
