"""Low-rank adapters (LoRA) on the generator's layers, applied at run time without merging.

A LoRA adapter replaces a layer's weight ``W`` by ``W + scale * dW`` with ``dW`` of rank ``r``
(``scale = alpha / r``), stored as two factors: ``lora_A`` on the layer's *input* channels (applied
first) and ``lora_B`` on its *output* channels (zero at the start of training, so a fresh adapter
changes nothing).  The product of the two, taken in the order of the weight's own axes, reshapes
straight into the weight's shape:

=================  ================  ==============  ==============  =========================
layer              weight            lora_A          lora_B          dW / scale
=================  ================  ==============  ==============  =========================
Linear             [out, in]         [r, in]         [out, r]        B @ A
Conv1d             [out, in, k]      [r, in*k]       [out, r]        (B @ A).reshape(out, in, k)
ConvTranspose1d    [in, out, k]      [in, r]         [r, out*k]      (A @ B).reshape(in, out, k)
=================  ================  ==============  ==============  =========================

A transposed convolution stores its input axis first, so there ``A`` leads the product.  Taking
``B @ A`` in the Conv1d layout and viewing it as ``[in, out, k]`` (what the public RVC LoRA
project's merge does) scrambles the delta: the merged layer then computes something its unmerged
twin never did.  :func:`lora_delta` is the one place that layout is written down.

At run time (:class:`LoRAAdapted`) the delta is never formed: the input goes through ``A`` as a
layer of the base layer's kind with ``r`` output channels (same stride, padding, dilation for a
convolution; a pointwise step for a transposed one), then through ``B``, whose result is scaled
and added to the base layer's output.  That equals the merged layer exactly in real arithmetic;
in float32 the two differ by rounding only.

Torch modules only (no file I/O): reading, validating and writing adapter files is
:mod:`rvc_lab.files.lora`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: Layer kinds an adapter can target, by the module class they wrap.
LAYER_KINDS = {"linear": nn.Linear, "conv1d": nn.Conv1d, "conv_transpose1d": nn.ConvTranspose1d}


@dataclass(frozen=True)
class LayerAdapter:
    """The adapter of one layer.

    Attributes
    ----------
    lora_A : Tensor
        Input-side factor (see the module table for its shape per layer kind).
    lora_B : Tensor
        Output-side factor.
    alpha : float
        Scale numerator: the delta is multiplied by ``alpha / r``.
    r : int
        Rank (the factors' shared dimension).
    """

    lora_A: torch.Tensor
    lora_B: torch.Tensor
    alpha: float
    r: int

    @property
    def scale(self) -> float:
        return float(self.alpha) / int(self.r)

    @property
    def parameter_count(self) -> int:
        return self.lora_A.numel() + self.lora_B.numel()

    def to(self, dtype: torch.dtype) -> "LayerAdapter":
        """The same adapter with both factors in ``dtype``."""
        return LayerAdapter(self.lora_A.to(dtype), self.lora_B.to(dtype), self.alpha, self.r)


def layer_kind(module: nn.Module) -> str:
    """``"linear"``, ``"conv1d"`` or ``"conv_transpose1d"`` for a module an adapter can target.

    Raises
    ------
    TypeError
        Any other module, or a grouped convolution (a low-rank delta across groups is not a
        grouped weight).
    """
    for kind, cls in LAYER_KINDS.items():
        if type(module) is cls:
            if kind != "linear" and module.groups != 1:
                raise TypeError(f"grouped {cls.__name__} (groups={module.groups}) cannot take a LoRA adapter")
            return kind
    kinds = ", ".join(c.__name__ for c in LAYER_KINDS.values())
    raise TypeError(f"{type(module).__name__} cannot take a LoRA adapter (only {kinds})")


def factor_shapes(kind: str, weight_shape: tuple, r: int) -> tuple[tuple, tuple]:
    """Shapes of ``(lora_A, lora_B)`` for a layer of ``kind`` whose weight has ``weight_shape``.

    Parameters
    ----------
    kind : {"linear", "conv1d", "conv_transpose1d"}
    weight_shape : tuple
        ``[out, in]``, ``[out, in, k]`` or ``[in, out, k]`` (transposed convolution).
    r : int
        Rank.
    """
    if kind == "linear":
        out_ch, in_ch = weight_shape
        return (r, in_ch), (out_ch, r)
    if kind == "conv1d":
        out_ch, in_ch, k = weight_shape
        return (r, in_ch * k), (out_ch, r)
    if kind == "conv_transpose1d":
        in_ch, out_ch, k = weight_shape
        return (in_ch, r), (r, out_ch * k)
    raise ValueError(f"unknown layer kind {kind!r} (expected one of {', '.join(LAYER_KINDS)})")


def lora_delta(kind: str, weight_shape: tuple, adapter: LayerAdapter) -> torch.Tensor:
    """The scaled weight delta ``(alpha / r) * dW`` in the layer's weight layout.

    Parameters
    ----------
    kind : {"linear", "conv1d", "conv_transpose1d"}
    weight_shape : tuple
        Shape of the layer's (folded) weight; the result has this shape.
    adapter : LayerAdapter

    Returns
    -------
    Tensor
        In the factors' dtype (float64 factors give a float64 delta).
    """
    a, b = adapter.lora_A, adapter.lora_B
    if kind == "conv_transpose1d":
        product = a @ b  # the weight's first axis is the input: A leads
    else:
        product = b @ a
    return (adapter.scale * product).reshape(weight_shape)


class LoRAAdapted(nn.Module):
    """A layer plus its unmerged adapter: ``base(x) + (alpha / r) * B(A(x))``.

    Parameters
    ----------
    base : nn.Linear, nn.Conv1d or nn.ConvTranspose1d
        The layer; kept as is (its weights are not touched).
    adapter : LayerAdapter
        Factors shaped per :func:`factor_shapes` for ``base``; cast to ``base``'s dtype.

    Notes
    -----
    Input and output shapes are those of ``base``: ``[..., in]`` -> ``[..., out]`` for a linear
    layer, ``[B, in, T]`` -> ``[B, out, T']`` for the convolutions.
    """

    def __init__(self, base: nn.Module, adapter: LayerAdapter):
        super().__init__()
        self.kind = layer_kind(base)
        want = factor_shapes(self.kind, tuple(base.weight.shape), adapter.r)
        got = (tuple(adapter.lora_A.shape), tuple(adapter.lora_B.shape))
        if got != want:
            shape = tuple(base.weight.shape)
            raise ValueError(f"adapter factors {got} do not fit a {self.kind} with weight {shape}: expected {want}")
        self.base = base
        self.scale = adapter.scale
        dtype = base.weight.dtype
        self.register_buffer("lora_A", adapter.lora_A.detach().to(dtype).clone())
        self.register_buffer("lora_B", adapter.lora_B.detach().to(dtype).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base, a, b = self.base, self.lora_A, self.lora_B
        if self.kind == "linear":
            low = F.linear(F.linear(x, a), b)
        elif self.kind == "conv1d":
            # A is a convolution with the base layer's geometry and r output channels; B mixes them.
            _, in_ch, k = base.weight.shape
            h = F.conv1d(x, a.reshape(a.shape[0], in_ch, k), None, base.stride, base.padding, base.dilation)
            low = b @ h  # pointwise: a matmul over channels ([out, r] @ [B, r, T]), faster than a 1-tap conv
        else:
            # A mixes the input channels down to r (pointwise); B is the transposed convolution.
            _, out_ch, k = base.weight.shape
            r = a.shape[1]
            h = a.t() @ x  # [r, in] @ [B, in, T]
            low = F.conv_transpose1d(h, b.reshape(r, out_ch, k), None, base.stride, base.padding,
                                     base.output_padding, 1, base.dilation)  # fmt: skip
        return base(x) + self.scale * low


def apply_lora(model: nn.Module, layers: dict[str, LayerAdapter]) -> nn.Module:
    """Wrap every adapted layer of ``model`` in :class:`LoRAAdapted`, in place.

    Parameters
    ----------
    model : nn.Module
        E.g. a :class:`rvc_lab.models.synthesizer.Synthesizer`; its own weights stay untouched.
    layers : dict[str, LayerAdapter]
        Module name (``"dec.ups.0"``, ``"dec.resblocks.3.convs1.1"``) -> adapter.

    Returns
    -------
    nn.Module
        ``model``.

    Raises
    ------
    ValueError
        A name that is no module of ``model``, a module already wrapped, or factors that do not fit.
    """
    for name, adapter in layers.items():
        parent_name, _, child = name.rpartition(".")
        try:
            parent = model.get_submodule(parent_name) if parent_name else model
            base = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{name}: no such layer in {type(model).__name__}") from None
        if isinstance(base, LoRAAdapted):
            raise ValueError(f"{name}: already carries an adapter")
        try:
            wrapped = LoRAAdapted(base, adapter)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: {exc}") from None
        setattr(parent, child, wrapped)
    return model
