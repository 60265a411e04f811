"""HuBERT content-encoder files: fairseq ``hubert_base.pt`` and Hugging Face model directories.

RVC users bring the content encoder in one of two layouts, holding the same numbers:

* **fairseq checkpoint** (``assets/hubert/hubert_base.pt`` of classic RVC): a pickled dict with
  ``cfg`` (plain dict; older files have an ``argparse.Namespace`` in ``args``), ``model`` (the state
  dict, fp16, fairseq key names) and ``task_state``, which in real checkpoints pickles
  ``fairseq.data.dictionary.Dictionary`` objects (the k-means label vocabularies).
* **Hugging Face directory** (``assets/hubert_base/`` of current upstream): ``config.json`` plus
  ``model.safetensors`` or ``pytorch_model.bin`` with transformers' key names and an extra
  ``final_proj``.

Both are untrusted.  The fairseq file is read weights-only; the only classes its pickle may name
are ``argparse.Namespace`` and fairseq's ``Dictionary``.  Without fairseq in the process, the latter
name is bound to a data-only stand-in *inside the unpickler's allow-list only*: nothing is put into
``sys.modules``, so a later real ``import fairseq`` is unaffected.  Strings from the file are never
evaluated (fairseq ``eval``s ``conv_feature_layers``; we parse it as a literal).

Loaders are pure functions: every call reads the file again; caching is the caller's business.
"""
from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from rvc_lab.atomic import write_text_atomic
from rvc_lab.errors import ModelFileError
from rvc_lab.files.safe_load import atomic_torch_save, safe_torch_load
from rvc_lab.models.hubert import HubertBase, HubertConfig, fold_weight_norm, split_weight_norm

logger = logging.getLogger(__name__)

WHAT = "HuBERT checkpoint"
FAIRSEQ_DICTIONARY = "fairseq.data.dictionary.Dictionary"
POS_CONV_NORM_DIM = 2  # weight norm of the positional conv is taken per kernel tap

# -- key names ---------------------------------------------------------------------------------
# Our module path -> (fairseq module path, transformers module path).  Parameter names (weight,
# bias) are the same in all three.
_TOP_LEVEL = {
    "conv_stack.first_norm": ("feature_extractor.conv_layers.0.2", "feature_extractor.conv_layers.0.layer_norm"),
    "feature_norm": ("layer_norm", "feature_projection.layer_norm"),
    "feature_proj": ("post_extract_proj", "feature_projection.projection"),
    "pos_conv": ("encoder.pos_conv.0", "encoder.pos_conv_embed.conv"),
    "encoder_norm": ("encoder.layer_norm", "encoder.layer_norm"),
    "final_proj": ("final_proj", "final_proj"),
}
_CONV = ("feature_extractor.conv_layers.{i}.0", "feature_extractor.conv_layers.{i}.conv")
_PER_LAYER = {
    "attn.q_proj": ("self_attn.q_proj", "attention.q_proj"),
    "attn.k_proj": ("self_attn.k_proj", "attention.k_proj"),
    "attn.v_proj": ("self_attn.v_proj", "attention.v_proj"),
    "attn.out_proj": ("self_attn.out_proj", "attention.out_proj"),
    "attn_norm": ("self_attn_layer_norm", "layer_norm"),
    "ffn_in": ("fc1", "feed_forward.intermediate_dense"),
    "ffn_out": ("fc2", "feed_forward.output_dense"),
    "ffn_norm": ("final_layer_norm", "final_layer_norm"),
}
_SCHEMES = {"fairseq": 0, "hf": 1}
# Tensors present in the files that feature extraction does not use (masking / pretraining heads).
_UNUSED = {
    "fairseq": ("mask_emb", "label_embs_concat"),
    "hf": ("masked_spec_embed",),
}
# How the weight-normalised positional conv may be stored: (g, v) suffixes.
_WEIGHT_NORM_SUFFIXES = (("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1"))


def _file_key(ours: str, scheme: str) -> str:
    """Name in a ``scheme`` ("fairseq" | "hf") state dict of our parameter ``ours``."""
    col = _SCHEMES[scheme]
    module, param = ours.rsplit(".", 1)
    parts = module.split(".")
    if parts[:2] == ["conv_stack", "convs"]:
        return _CONV[col].format(i=parts[2]) + "." + param
    if parts[0] == "layers":
        return f"encoder.layers.{parts[1]}.{_PER_LAYER['.'.join(parts[2:])][col]}.{param}"
    return f"{_TOP_LEVEL[module][col]}.{param}"


# -- reading -----------------------------------------------------------------------------------


class _DictionaryStandIn:
    """Data-only stand-in for ``fairseq.data.dictionary.Dictionary`` (label vocabularies).

    The unpickler fills ``__dict__`` (symbols, counts, indices); nothing of it is used.
    """


def _dictionary_allow_entry() -> Any:
    """Allow-list entry for fairseq's ``Dictionary``: the real class if fairseq is loaded already.

    Otherwise the stand-in, bound to fairseq's name only within torch's weights-only allow-list
    (the ``(object, "module.Name")`` form), which leaves ``sys.modules`` alone.  Importing fairseq
    just to name a class would cost seconds and gain nothing: either way only data is restored.
    """
    module = sys.modules.get("fairseq.data.dictionary")
    real = getattr(module, "Dictionary", None) if module is not None else None
    if isinstance(real, type):
        return real
    return (_DictionaryStandIn, FAIRSEQ_DICTIONARY)


def _literal_conv_layers(text: str) -> tuple[tuple[int, int, int], ...]:
    """Parse fairseq's ``conv_feature_layers`` (e.g. ``"[(512,10,5)] + [(512,3,2)] * 4"``) safely.

    Only list/tuple literals of ints joined by ``+`` and ``* int`` are accepted; fairseq itself
    ``eval``s this string, which we never do with a string from an untrusted file.
    """

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Add) and isinstance(left, list) and isinstance(right, list):
                return left + right
            if isinstance(node.op, ast.Mult) and isinstance(left, list) and type(right) is int and 0 <= right <= 64:
                return left * right
        raise ValueError(f"unsupported element {ast.dump(node)[:60]}")

    layers = value(ast.parse(text, mode="eval").body)
    if not isinstance(layers, list) or not layers:
        raise ValueError("not a non-empty list")
    out = []
    for layer in layers:
        if not (isinstance(layer, tuple) and len(layer) == 3 and all(type(v) is int and v > 0 for v in layer)):
            raise ValueError(f"layer {layer!r} is not (channels, kernel, stride)")
        out.append(layer)
    return tuple(out)


def _fairseq_config(path: str, ckpt: Mapping) -> HubertConfig:
    """Architecture from a fairseq checkpoint's ``cfg["model"]`` (or old-style ``args``)."""
    cfg = ckpt.get("cfg")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("model"), Mapping):
        model_cfg: Mapping = cfg["model"]
    elif isinstance(ckpt.get("args"), argparse.Namespace):
        model_cfg = vars(ckpt["args"])
    else:
        logger.info("%s: no model configuration stored, assuming HuBERT base", path)
        return HubertConfig()

    def unsupported(what: str) -> ModelFileError:
        return ModelFileError(path, f"unsupported HuBERT variant ({what}); only the post-LN HuBERT base layout is supported")

    if model_cfg.get("layer_norm_first", False):
        raise unsupported("layer_norm_first=True, the pre-LN layout of HuBERT large")
    if model_cfg.get("extractor_mode", "default") != "default":
        raise unsupported(f"extractor_mode={model_cfg.get('extractor_mode')!r}")
    if model_cfg.get("activation_fn", "gelu") != "gelu":
        raise unsupported(f"activation_fn={model_cfg.get('activation_fn')!r}")
    if model_cfg.get("layer_type", "transformer") != "transformer":
        raise unsupported(f"layer_type={model_cfg.get('layer_type')!r}")
    base = HubertConfig()
    conv_layers = base.conv_layers
    if model_cfg.get("conv_feature_layers") is not None:
        try:
            conv_layers = _literal_conv_layers(str(model_cfg["conv_feature_layers"]))
        except (ValueError, SyntaxError) as exc:
            raise ModelFileError(path, f"cannot read conv_feature_layers {model_cfg['conv_feature_layers']!r}: {exc}") from None
    try:
        return HubertConfig(
            conv_layers=conv_layers,
            conv_bias=bool(model_cfg.get("conv_bias", base.conv_bias)),
            embed_dim=int(model_cfg.get("encoder_embed_dim", base.embed_dim)),
            ffn_dim=int(model_cfg.get("encoder_ffn_embed_dim", base.ffn_dim)),
            num_heads=int(model_cfg.get("encoder_attention_heads", base.num_heads)),
            num_layers=int(model_cfg.get("encoder_layers", base.num_layers)),
            pos_conv_kernel=int(model_cfg.get("conv_pos", base.pos_conv_kernel)),
            pos_conv_groups=int(model_cfg.get("conv_pos_groups", base.pos_conv_groups)),
            final_dim=_final_dim(ckpt.get("model"), "final_proj.weight", base.final_dim),
        )
    except (TypeError, ValueError) as exc:
        raise ModelFileError(path, f"unreadable model configuration: {exc}") from None


def _hf_config(path: str, config: Mapping, state: Mapping) -> HubertConfig:
    """Architecture from a transformers ``config.json`` (HubertConfig fields)."""
    if config.get("model_type") not in (None, "hubert"):
        raise ModelFileError(path, f"config.json describes a {config.get('model_type')!r} model, not HuBERT")

    def unsupported(what: str) -> ModelFileError:
        return ModelFileError(path, f"unsupported HuBERT variant ({what}); only the post-LN HuBERT base layout is supported")

    if config.get("do_stable_layer_norm", False):
        raise unsupported("do_stable_layer_norm=true, the pre-LN layout of HuBERT large")
    if config.get("feat_extract_norm", "group") != "group":
        raise unsupported(f"feat_extract_norm={config.get('feat_extract_norm')!r}")
    if not config.get("feat_proj_layer_norm", True):
        raise unsupported("feat_proj_layer_norm=false")
    if config.get("conv_pos_batch_norm", False):
        raise unsupported("conv_pos_batch_norm=true")
    for key in ("hidden_act", "feat_extract_activation"):
        if config.get(key, "gelu") != "gelu":
            raise unsupported(f"{key}={config.get(key)!r}")
    base = HubertConfig()
    try:
        conv_layers = base.conv_layers
        if "conv_dim" in config:
            dims, kernels, strides = config["conv_dim"], config["conv_kernel"], config["conv_stride"]
            if not len(dims) == len(kernels) == len(strides):
                raise ValueError("conv_dim, conv_kernel and conv_stride differ in length")
            conv_layers = tuple((int(c), int(k), int(s)) for c, k, s in zip(dims, kernels, strides))
        return HubertConfig(
            conv_layers=conv_layers,
            conv_bias=bool(config.get("conv_bias", base.conv_bias)),
            embed_dim=int(config.get("hidden_size", base.embed_dim)),
            ffn_dim=int(config.get("intermediate_size", base.ffn_dim)),
            num_heads=int(config.get("num_attention_heads", base.num_heads)),
            num_layers=int(config.get("num_hidden_layers", base.num_layers)),
            pos_conv_kernel=int(config.get("num_conv_pos_embeddings", base.pos_conv_kernel)),
            pos_conv_groups=int(config.get("num_conv_pos_embedding_groups", base.pos_conv_groups)),
            final_dim=_final_dim(state, "final_proj.weight", int(config.get("classifier_proj_size", base.final_dim))),
            norm_eps=float(config.get("layer_norm_eps", base.norm_eps)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(path, f"unreadable config.json: {exc}") from None


def _final_dim(state: Any, key: str, default: int) -> int:
    """final_proj's output size as stored (its config field is absent or 0 in some files)."""
    w = state.get(key) if isinstance(state, Mapping) else None
    return int(w.shape[0]) if isinstance(w, Tensor) and w.dim() == 2 else default


def _scheme_of(state: Mapping) -> str | None:
    if "post_extract_proj.weight" in state:
        return "fairseq"
    if "feature_projection.projection.weight" in state:
        return "hf"
    return None


def _strip_prefix(state: Mapping) -> Mapping:
    """Drop the ``hubert.`` prefix of transformers' task models (HubertForCTC etc.)."""
    if "feature_projection.projection.weight" not in state and "hubert.feature_projection.projection.weight" in state:
        return {k[len("hubert."):]: v for k, v in state.items() if k.startswith("hubert.")} | {
            k: v for k, v in state.items() if k.startswith("final_proj.")
        }
    return state


def _build(path: str, cfg: HubertConfig, state: Mapping, scheme: str) -> HubertBase:
    """Validate ``state`` against ``cfg`` and load it into a fresh fp32 eval-mode model."""
    try:
        model = HubertBase(cfg)
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(path, f"inconsistent HuBERT configuration: {exc}") from None
    expected = model.state_dict()
    pos_prefix = _file_key("pos_conv.weight", scheme).rsplit(".", 1)[0]
    used: set[str] = set()
    missing: list[str] = []
    wrong: list[str] = []
    loaded: dict[str, Tensor] = {}

    def take(key: str, shape: torch.Size | None) -> Tensor | None:
        t = state.get(key)
        if t is None:
            missing.append(key)
            return None
        used.add(key)
        if not isinstance(t, Tensor) or not t.is_floating_point():
            wrong.append(f"{key} is not a float tensor")
            return None
        if shape is not None and t.shape != shape:
            wrong.append(f"{key} has shape {list(t.shape)}, expected {list(shape)}")
            return None
        return t

    for ours, target in expected.items():
        if ours == "pos_conv.weight":
            loaded[ours] = _pos_conv_weight(path, state, pos_prefix, target.shape, take, missing, wrong)
            continue
        t = take(_file_key(ours, scheme), target.shape)
        if t is not None:
            loaded[ours] = t
    if missing:
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        raise ModelFileError(path, f"not a complete HuBERT {scheme} state dict: missing {', '.join(missing[:6])}{more}")
    if wrong:
        more = f"; and {len(wrong) - 4} more" if len(wrong) > 4 else ""
        raise ModelFileError(path, f"HuBERT weights do not fit the configured architecture: {'; '.join(wrong[:4])}{more}")
    extra = sorted(k for k in state if k not in used and k not in _UNUSED[scheme])
    if extra:
        logger.info("%s: ignoring %d tensors feature extraction does not use (%s%s)", path, len(extra),
                    ", ".join(extra[:3]), ", ..." if len(extra) > 3 else "")
    bad = [k for k, t in loaded.items() if not torch.isfinite(t).all()]
    if bad:
        raise ModelFileError(path, f"HuBERT weights contain NaN or Inf ({', '.join(bad[:3])})")
    model.load_state_dict({k: t.to(torch.float32) for k, t in loaded.items()}, strict=True)
    return model.eval()


def _pos_conv_weight(path, state, prefix, shape, take: Callable, missing: list, wrong: list) -> Tensor | None:
    """The positional conv weight, folded from weight-norm (g, v) in either storage convention."""
    for g_name, v_name in _WEIGHT_NORM_SUFFIXES:
        if f"{prefix}.{v_name}" in state:
            v = take(f"{prefix}.{v_name}", shape)
            g_shape = torch.Size([1 if a != POS_CONV_NORM_DIM else n for a, n in enumerate(shape)])
            g = take(f"{prefix}.{g_name}", g_shape)
            return fold_weight_norm(g, v, POS_CONV_NORM_DIM) if g is not None and v is not None else None
    if f"{prefix}.weight" in state:  # already folded (e.g. a file re-saved after remove_weight_norm)
        t = take(f"{prefix}.weight", shape)
        return None if t is None else t.to(torch.float32)
    missing.append(f"{prefix}.weight_g/weight_v")
    return None


def _load_fairseq_file(path: str) -> HubertBase:
    ckpt = safe_torch_load(path, allow=[_dictionary_allow_entry(), argparse.Namespace], what=WHAT)
    if not isinstance(ckpt, Mapping):
        raise ModelFileError(path, f"not a HuBERT checkpoint: it holds a {type(ckpt).__name__}, not a dict")
    if isinstance(ckpt.get("model"), Mapping):
        state = ckpt["model"]
        container = ckpt
    elif isinstance(ckpt.get("state_dict"), Mapping):
        state, container = ckpt["state_dict"], {}
    else:
        state, container = ckpt, {}
    state = _strip_prefix(state)
    scheme = _scheme_of(state)
    if scheme is None:
        keys = ", ".join(list(ckpt)[:5])
        raise ModelFileError(path, f"not a HuBERT checkpoint: no HuBERT weights found (top-level keys: {keys})")
    if scheme == "fairseq":
        cfg = _fairseq_config(path, container)
    else:
        # a bare transformers state dict (pytorch_model.bin given as a file): config.json beside it
        config_file = Path(path).with_name("config.json")
        config = _read_json(config_file) if config_file.is_file() else {}
        cfg = _hf_config(path, config, state)
    model = _build(path, cfg, state, scheme)
    logger.info("loaded HuBERT (%s checkpoint, %d layers, %d wide) from %s", scheme, cfg.num_layers, cfg.embed_dim, path)
    return model


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(path, f"unreadable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelFileError(path, "expected a JSON object")
    return data


def _load_hf_dir(path: str) -> HubertBase:
    d = Path(path)
    config_file = d / "config.json"
    if not config_file.is_file():
        raise ModelFileError(path, "not a Hugging Face HuBERT directory: config.json is missing")
    config = _read_json(config_file)
    if (d / "model.safetensors").is_file():
        weights_file = d / "model.safetensors"
        try:
            from safetensors import SafetensorError
            from safetensors.torch import load_file
        except ImportError:
            raise ModelFileError(weights_file, "reading .safetensors needs the 'safetensors' package") from None
        try:
            state = load_file(str(weights_file), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelFileError(weights_file, f"{WHAT} is truncated or corrupt ({exc})") from None
    elif (d / "pytorch_model.bin").is_file():
        weights_file = d / "pytorch_model.bin"
        state = safe_torch_load(weights_file, allow=[], what=WHAT)
    else:
        raise ModelFileError(path, "no model.safetensors or pytorch_model.bin in the HuBERT directory (sharded weights are not supported)")
    if not isinstance(state, Mapping):
        raise ModelFileError(weights_file, f"not a state dict: it holds a {type(state).__name__}")
    state = _strip_prefix(state)
    if _scheme_of(state) != "hf":
        raise ModelFileError(weights_file, "not HuBERT weights in transformers' layout (feature_projection.projection.weight missing)")
    cfg = _hf_config(str(config_file), config, state)
    model = _build(str(weights_file), cfg, state, "hf")
    logger.info("loaded HuBERT (transformers directory, %d layers, %d wide) from %s", cfg.num_layers, cfg.embed_dim, path)
    return model


def load_content_encoder(path: str | os.PathLike) -> HubertBase:
    """Load RVC's HuBERT content encoder from a fairseq checkpoint or a Hugging Face directory.

    Parameters
    ----------
    path : path-like
        ``hubert_base.pt`` (fairseq; a bare state dict with fairseq or transformers key names is
        accepted too) or a directory with ``config.json`` and ``model.safetensors`` /
        ``pytorch_model.bin``.

    Returns
    -------
    HubertBase
        float32, eval mode, on the CPU, positional-conv weight norm folded.

    Raises
    ------
    ModelFileError
        Missing/truncated/corrupt file, a pickle naming anything but tensors, containers,
        ``argparse.Namespace`` or fairseq's ``Dictionary`` (refused before anything runs), a file
        that is not HuBERT, missing tensors, wrong shapes, NaN/Inf weights, or an unsupported
        variant (pre-LN HuBERT large).  The message names the file and the problem.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return _load_hf_dir(path)
    return _load_fairseq_file(path)


# -- writing -----------------------------------------------------------------------------------


def _conv_layers_expr(conv_layers: tuple[tuple[int, int, int], ...]) -> str:
    """fairseq's compact spelling, e.g. ``[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2``."""
    runs: list[list] = []
    for layer in conv_layers:
        if runs and runs[-1][0] == layer:
            runs[-1][1] += 1
        else:
            runs.append([layer, 1])
    parts = []
    for (c, k, s), n in runs:
        parts.append(f"[({c},{k},{s})]" + (f" * {n}" if n > 1 else ""))
    return " + ".join(parts)


def _fairseq_cfg(cfg: HubertConfig) -> dict:
    """The ``cfg`` dict of a fairseq HuBERT pretraining checkpoint (base recipe, our sizes)."""
    return {
        "_name": None,
        "common": {"_name": None, "seed": 1337, "fp16": True, "log_format": "json"},
        "model": {
            "_name": "hubert", "label_rate": 50, "extractor_mode": "default",
            "encoder_layers": cfg.num_layers, "encoder_embed_dim": cfg.embed_dim,
            "encoder_ffn_embed_dim": cfg.ffn_dim, "encoder_attention_heads": cfg.num_heads,
            "activation_fn": "gelu", "layer_type": "transformer",
            "dropout": 0.1, "attention_dropout": 0.1, "activation_dropout": 0.0, "encoder_layerdrop": 0.05,
            "dropout_input": 0.1, "dropout_features": 0.1, "final_dim": cfg.final_dim, "untie_final_proj": False,
            "layer_norm_first": False, "conv_feature_layers": _conv_layers_expr(cfg.conv_layers),
            "conv_bias": cfg.conv_bias, "logit_temp": 0.1, "target_glu": False, "feature_grad_mult": 0.1,
            "mask_length": 10, "mask_prob": 0.8, "mask_selection": "static", "mask_other": 0.0,
            "no_mask_overlap": False, "mask_min_space": 1, "mask_channel_length": 10, "mask_channel_prob": 0.0,
            "mask_channel_selection": "static", "mask_channel_other": 0.0, "no_mask_channel_overlap": False,
            "mask_channel_min_space": 1, "conv_pos": cfg.pos_conv_kernel, "conv_pos_groups": cfg.pos_conv_groups,
            "latent_temp": [2.0, 0.5, 0.999995], "skip_masked": False, "skip_nomask": False,
            "checkpoint_activations": False, "required_seq_len_multiple": 2,
        },
        "task": {
            "_name": "hubert_pretraining", "data": "", "fine_tuning": False, "labels": ["km"], "label_dir": "",
            "label_rate": 50.0, "sample_rate": 16000, "normalize": False, "enable_padding": False,
            "max_keep_size": None, "max_sample_size": 250000, "min_sample_size": 32000, "single_target": False,
            "random_crop": True, "pad_audio": False,
        },
        "criterion": {"_name": "hubert", "pred_masked_weight": 1.0, "pred_nomask_weight": 0.0, "loss_weights": [10.0]},
    }


def _file_state(model: HubertBase, scheme: str, dtype: torch.dtype) -> "OrderedDict[str, Tensor]":
    """``model``'s weights under ``scheme`` names, the positional conv split back into (g, v)."""
    out: OrderedDict[str, Tensor] = OrderedDict()
    for ours, t in model.state_dict().items():
        name = _file_key(ours, scheme)
        if ours == "pos_conv.weight":
            g, v = split_weight_norm(t, POS_CONV_NORM_DIM)
            prefix = name.rsplit(".", 1)[0]
            out[f"{prefix}.weight_g"] = g.to(dtype).contiguous()
            out[f"{prefix}.weight_v"] = v.to(dtype).contiguous()
        else:
            out[name] = t.detach().to(dtype).clone().contiguous()
    return out


def write_fairseq_checkpoint(model: HubertBase, path: str | os.PathLike) -> Path:
    """Write ``model`` as a fairseq HuBERT pretraining checkpoint (what classic RVC ships).

    Same container as the parity asset ``assets/hubert/hubert_base.pt``: ``args`` None, ``cfg``
    plain dict (base recipe with this model's sizes), ``model`` with fairseq key names in fp16
    (positional conv as ``weight_g``/``weight_v``, plus zero ``mask_emb`` and a zero
    ``label_embs_concat`` for 504 k-means labels, which fairseq's own loader expects),
    ``task_state`` empty (no pickled fairseq classes).

    Returns
    -------
    Path
        The written file.
    """
    cfg = model.cfg
    state = _file_state(model, "fairseq", torch.float16)
    state["mask_emb"] = torch.zeros(cfg.embed_dim, dtype=torch.float16)
    state["label_embs_concat"] = torch.zeros(504, cfg.final_dim, dtype=torch.float16)  # 500 km units + 4 specials
    ckpt = OrderedDict(
        args=None,
        cfg=_fairseq_cfg(cfg),
        model=state,
        criterion=None,
        optimizer_history=[{"criterion_name": "HubertCriterion", "optimizer_name": "FairseqAdam",
                            "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        task_state={},
        extra_state={"epoch": 1, "train_iterator": {"epoch": 1, "iterations_in_epoch": 0, "shuffle": True},
                     "previous_training_time": 0.0},
        last_optimizer_state=None,
    )
    path = Path(path)
    atomic_torch_save(ckpt, path)
    return path


def _hf_config_json(cfg: HubertConfig) -> dict:
    """transformers ``HubertConfig`` fields for this model (inference-relevant ones from ``cfg``)."""
    return {
        "architectures": ["HubertModel"], "model_type": "hubert",
        "activation_dropout": 0.1, "apply_spec_augment": True, "attention_dropout": 0.1,
        "bos_token_id": 1, "classifier_proj_size": cfg.final_dim, "conv_bias": cfg.conv_bias,
        "conv_dim": [c for c, _, _ in cfg.conv_layers], "conv_kernel": [k for _, k, _ in cfg.conv_layers],
        "conv_stride": [s for _, _, s in cfg.conv_layers],
        "ctc_loss_reduction": "sum", "ctc_zero_infinity": False, "do_stable_layer_norm": False,
        "eos_token_id": 2, "feat_extract_activation": "gelu", "feat_extract_norm": "group",
        "feat_proj_dropout": 0.0, "feat_proj_layer_norm": True, "final_dropout": 0.1, "hidden_act": "gelu",
        "hidden_dropout": 0.1, "hidden_size": cfg.embed_dim, "initializer_range": 0.02,
        "intermediate_size": cfg.ffn_dim, "layer_norm_eps": cfg.norm_eps, "layerdrop": 0.1,
        "mask_feature_length": 10, "mask_feature_prob": 0.0, "mask_time_length": 10, "mask_time_prob": 0.05,
        "num_attention_heads": cfg.num_heads, "num_conv_pos_embedding_groups": cfg.pos_conv_groups,
        "num_conv_pos_embeddings": cfg.pos_conv_kernel, "num_feat_extract_layers": len(cfg.conv_layers),
        "num_hidden_layers": cfg.num_layers, "pad_token_id": 0, "torch_dtype": "float32",
        "use_weighted_layer_sum": False, "vocab_size": 32,
    }


PREPROCESSOR_CONFIG = {
    "do_normalize": False, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
    "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False, "sampling_rate": 16000,
}
"""``preprocessor_config.json`` of RVC's HuBERT: raw 16 kHz audio, no normalisation."""


def write_hf_directory(model: HubertBase, dirpath: str | os.PathLike) -> Path:
    """Write ``model`` as a Hugging Face directory like upstream's ``assets/hubert_base``.

    ``config.json``, ``preprocessor_config.json`` and ``pytorch_model.bin`` (fp32, transformers
    key names, positional conv as ``weight_g``/``weight_v``, zero ``masked_spec_embed``, plus
    ``final_proj``).  Loadable by ``transformers.HubertModel.from_pretrained`` (``final_proj`` is
    then reported as unused) and by :func:`load_content_encoder`.

    Returns
    -------
    Path
        The directory.
    """
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    state = _file_state(model, "hf", torch.float32)
    state["masked_spec_embed"] = torch.zeros(model.cfg.embed_dim, dtype=torch.float32)
    atomic_torch_save(state, d / "pytorch_model.bin")
    for name, content in (("config.json", _hf_config_json(model.cfg)), ("preprocessor_config.json", PREPROCESSOR_CONFIG)):
        write_text_atomic(d / name, json.dumps(content, indent=2) + "\n")
    return d
