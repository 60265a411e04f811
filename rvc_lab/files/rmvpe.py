"""``rmvpe.pt``: the RMVPE pitch model file (a plain state dict, usually fp16).

The file RVC distributes is ``torch.save(E2E(4, 1, (2, 2)).state_dict())`` in half precision:
741 tensors, no pickled classes.  It is loaded weights-only and checked key by key before any
number reaches the network, so a truncated, crafted or wrong file fails with a
:class:`~rvc_lab.errors.ModelFileError` saying what is wrong.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
from typing import Dict, Mapping, Tuple, Union

import numpy as np
import torch

from rvc_lab.errors import ModelFileError
from rvc_lab.files.safe_load import atomic_torch_save, safe_torch_load
from rvc_lab.models.rmvpe import RMVPE, RMVPENet

log = logging.getLogger(__name__)

WHAT = "RMVPE model"


@functools.lru_cache(maxsize=1)
def _parameter_shapes() -> Dict[str, Tuple[int, ...]]:
    """Key -> shape of every tensor in RMVPENet's state dict (built on the meta device: no memory)."""
    with torch.device("meta"):
        net = RMVPENet()
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def _is_batch_count(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def _checked_state_dict(path: str, obj: object) -> Dict[str, torch.Tensor]:
    """Validate a loaded object against RMVPENet's parameter table; return fp32 tensors."""
    if not isinstance(obj, Mapping):
        raise ModelFileError(path, f"{WHAT} must be a state dict (mapping of tensors), found {type(obj).__name__}")
    reference = _parameter_shapes()
    keys = set(obj.keys())
    non_str = [k for k in keys if not isinstance(k, str)]
    if non_str:
        raise ModelFileError(path, f"{WHAT} has non-string keys, e.g. {non_str[0]!r}")
    # num_batches_tracked is training bookkeeping: tolerated when absent.
    missing = sorted(k for k in reference if k not in keys and not _is_batch_count(k))
    unexpected = sorted(keys - set(reference))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        hint = " - is this an RMVPE rmvpe.pt (E2E(4, 1, (2, 2)) state dict)?"
        raise ModelFileError(path, f"{WHAT} does not match the RMVPE network: " + "; ".join(parts) + hint)

    out: Dict[str, torch.Tensor] = {}
    for key, shape in reference.items():
        if key not in obj:
            continue
        value = obj[key]
        if not torch.is_tensor(value):
            raise ModelFileError(path, f"{WHAT}: {key} is a {type(value).__name__}, not a tensor")
        if _is_batch_count(key):
            # Older torch saved this scalar with shape [1]; it has no effect in eval mode.
            if value.numel() != 1:
                raise ModelFileError(path, f"{WHAT}: {key} should hold one number, has shape {list(value.shape)}")
            out[key] = value.reshape(()).to(torch.long)
            continue
        if tuple(value.shape) != shape:
            raise ModelFileError(path, f"{WHAT}: {key} has shape {list(value.shape)}, expected {list(shape)}")
        if not value.is_floating_point():
            raise ModelFileError(path, f"{WHAT}: {key} has dtype {value.dtype}, expected a float tensor")
        value = value.float()
        # NaN/Inf anywhere makes the sum non-finite (an fp32 sum of fp16-range values cannot
        # overflow here); a reduction avoids a 90M-element boolean temporary.
        if not torch.isfinite(value.sum()):
            raise ModelFileError(path, f"{WHAT}: {key} contains NaN or infinite values")
        out[key] = value
    return out


def load_rmvpe(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu") -> RMVPE:
    """Load ``rmvpe.pt`` into an fp32, eval-mode :class:`~rvc_lab.models.rmvpe.RMVPE`.

    Parameters
    ----------
    path : path-like
        A plain RMVPE state dict (fp16 or fp32) as RVC distributes it.
    device : str or torch.device
        Where the network runs.

    Raises
    ------
    ModelFileError
        Missing, empty, truncated or corrupt file; a pickle referencing code; not a state dict;
        missing/unexpected keys; wrong shapes; non-float or non-finite weights.
    """
    path = os.fspath(path)
    state = _checked_state_dict(path, safe_torch_load(path, what=WHAT))
    for key in _parameter_shapes():
        if _is_batch_count(key) and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    # Built on the meta device and given the file's tensors: no throw-away random init.
    with torch.device("meta"):
        net = RMVPENet()
    net.load_state_dict(state, strict=True, assign=True)
    log.debug("loaded %s from %s", WHAT, path)
    return RMVPE(net, device=device)


def write_rmvpe(model: Union[RMVPE, RMVPENet, Mapping[str, torch.Tensor]], path: Union[str, os.PathLike]) -> None:
    """Write an RMVPE model the way RVC distributes it: plain fp16 state dict.

    ``num_batches_tracked`` entries are stored with shape [1] (as in the parity asset).  The file
    appears atomically (temporary file in the same folder, then rename).
    """
    if isinstance(model, RMVPE):
        state = model.net.state_dict()
    elif isinstance(model, RMVPENet):
        state = model.state_dict()
    else:
        state = dict(model)
    packed = {}
    for key, value in state.items():
        value = value.detach().cpu()
        if _is_batch_count(key):
            packed[key] = value.reshape(1).to(torch.long)
        else:
            packed[key] = value.to(torch.float16).contiguous()
    atomic_torch_save(packed, path)


def random_rmvpe_weights(seed: int) -> Dict[str, torch.Tensor]:
    """Seeded random RMVPE weights for demo assets (fp32 tensors with fp16-representable values).

    Every tensor draws from its own numpy PCG64 stream keyed by ``(seed, key)``, so values do not
    depend on the order of keys.  Scales follow PyTorch's default initialisation (uniform
    +-1/sqrt(fan_in) for conv/linear weights and biases, +-1/sqrt(hidden) for the GRU);
    BatchNorm layers are perturbed around identity (weight 1+-0.1, bias +-0.1, running mean
    +-0.1, running var 0.5..1.5) so that they matter.  Such a network gives mid-range salience
    on any input: a deterministic stand-in for file-format and plumbing tests, not a pitch tracker.
    """
    return {key: random_rmvpe_tensor(seed, key) for key in _parameter_shapes()}


def random_rmvpe_tensor(seed: int, key: str) -> torch.Tensor:
    """The tensor ``key`` of :func:`random_rmvpe_weights` (``seed``), computed on its own."""
    shapes = _parameter_shapes()
    shape = shapes[key]
    if _is_batch_count(key):
        return torch.zeros((), dtype=torch.long)
    digest = hashlib.sha256(f"rvc_lab-rmvpe|{seed}|{key}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    module, name = key.rsplit(".", 1)
    is_norm = f"{module}.running_var" in shapes
    if is_norm and name == "weight":
        values = 1.0 + rng.uniform(-0.1, 0.1, shape)
    elif is_norm and name in ("bias", "running_mean"):
        values = rng.uniform(-0.1, 0.1, shape)
    elif is_norm:  # running_var
        values = rng.uniform(0.5, 1.5, shape)
    elif ".gru." in key:
        values = rng.uniform(-1.0, 1.0, shape) / np.sqrt(256)
    else:
        # conv / linear: the bias takes its bound from the weight it belongs to.  PyTorch's
        # fan_in is size(1) * kernel area, for ConvTranspose2d weights too.
        weight_shape = shapes[f"{module}.weight"]
        fan_in = weight_shape[1] * int(np.prod(weight_shape[2:]))
        values = rng.uniform(-1.0, 1.0, shape) / np.sqrt(fan_in)
    return torch.from_numpy(values.astype(np.float16).astype(np.float32))
