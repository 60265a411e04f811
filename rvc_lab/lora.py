"""Fine-tuned voices from LoRA adapters: merge into a voice file, or run unmerged.

* :func:`merged_weights` -- a voice's stored weights with every adapted layer's delta added;
* :func:`merge_voice_file` -- ``rvc-lab lora merge``: the same, written as a normal voice file;
* :func:`adapted_synthesizer` -- the voice's generator with the adapter applied at run time
  (:class:`rvc_lab.models.lora.LoRAAdapted`), the reference a merge is checked against.

Weight-normalised layers (the decoder's upsampling and residual convolutions) are stored as
``weight_g``/``weight_v``: the delta is added to the folded weight ``W = g v / ||v||`` and the sum
stored back as ``v' = W + dW``, ``g' = ||W + dW||`` (norms over every dim but 0), which folds to
``W + dW`` again, so upstream and rvc_lab load the merged file with their usual code.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict

import torch

from rvc_lab.errors import ModelFileError
from rvc_lab.files.generator_weights import build_synthesizer
from rvc_lab.files.lora import (
    LoRAAdapter,
    adaptable_layers,
    check_adapter_fits,
    folded_layer_weight,
    load_adapter,
    stored_weight_keys,
)
from rvc_lab.files.safe_load import atomic_torch_save, require_file, safe_torch_load
from rvc_lab.files.voice import parse_voice
from rvc_lab.models.lora import apply_lora, lora_delta

log = logging.getLogger(__name__)

def merged_weights(voice, adapter: LoRAAdapter) -> "OrderedDict[str, torch.Tensor]":
    """The voice's stored weights with the adapter merged, float32, keys in the voice's order.

    The adapter must fit the voice (:func:`rvc_lab.files.lora.check_adapter_fits`).  Sums are
    formed in float64 and rounded once to float32.  Tensors of layers without an adapter are the
    voice's values in float32 (exact: they were fp16).

    Returns
    -------
    OrderedDict[str, Tensor]
        Same keys as ``voice.weights``.
    """
    kinds = adaptable_layers(voice)
    out = OrderedDict((k, t.to(torch.float32)) for k, t in voice.weights.items())
    for layer, factors in adapter.layers.items():
        kind, shape = kinds[layer]
        keys = stored_weight_keys(voice.weights, layer)
        merged = folded_layer_weight(voice.weights, layer).double() + lora_delta(kind, shape, factors.to(torch.float64))
        if len(keys) == 1:
            out[keys[0]] = merged.float()
        else:
            g_key, v_key = keys
            out[v_key] = merged.float()
            # g' = ||W + dW|| over every dim but 0: folds back to W + dW
            out[g_key] = torch.norm_except_dim(merged, 2, 0).reshape(voice.weights[g_key].shape).float()
    return out


def adapted_synthesizer(voice, adapter: LoRAAdapter):
    """The voice's generator (eval, float32) with ``adapter`` applied unmerged, at run time."""
    check_adapter_fits(adapter, voice)
    return apply_lora(build_synthesizer(voice), adapter.layers)


def merge_voice_file(voice_path: str | os.PathLike, adapter_path: str | os.PathLike,
                     out_path: str | os.PathLike) -> dict:  # fmt: skip
    """``rvc-lab lora merge``: write the voice with the adapter merged, as a normal voice file.

    Both inputs are read and validated (and the adapter checked against the voice) before
    anything is computed or written; no generator is built.  The output keeps the input's dict
    layout (same keys, same order, same config/info/tags); its weights are fp16, as upstream's
    export writes them, and it is validated as :func:`rvc_lab.files.voice.load_voice` would, then
    written atomically.

    Returns
    -------
    dict
        ``path``, ``layers`` (adapted), ``adapter_parameters``, ``max_rounding`` (largest
        |fp16 - fp32| over the merged tensors).

    Raises
    ------
    ModelFileError
        Missing or invalid voice or adapter, or an adapter made for another voice; nothing is
        written then.
    """
    voice_path, out_path = os.fspath(voice_path), os.fspath(out_path)
    require_file(voice_path, "voice model")
    require_file(adapter_path, "LoRA adapter")
    if os.path.abspath(out_path) == os.path.abspath(os.fspath(adapter_path)):
        raise ModelFileError(out_path, "the output would overwrite the adapter")
    raw = safe_torch_load(voice_path, what="voice model")
    voice = parse_voice(voice_path, raw)
    adapter = load_adapter(adapter_path)
    check_adapter_fits(adapter, voice)

    merged = merged_weights(voice, adapter)
    out = OrderedDict(raw)  # same keys and order as the input
    out["weight"] = OrderedDict((k, t.to(torch.float16)) for k, t in merged.items())
    parse_voice(out_path, out)
    rounding = max(float((out["weight"][k].float() - merged[k]).abs().max()) for k in merged)
    atomic_torch_save(out, out_path)
    log.info("merged %d adapted layers (%d adapter parameters) into %s", len(adapter.layers),
             adapter.parameter_count, out_path)  # fmt: skip
    return {"path": out_path, "layers": len(adapter.layers), "adapter_parameters": adapter.parameter_count,
            "max_rounding": rounding}  # fmt: skip
