"""A voice file's generator weights -> a built :class:`rvc_lab.models.synthesizer.Synthesizer`.

The file side of the generator: decoding the stored weight names (weight norm as
``weight_g``/``weight_v`` or ``parametrizations.weight.original0/1``), dropping the training-only
``enc_q.*``, and checking that every tensor fits the architecture the file's config describes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from rvc_lab.errors import ModelFileError
from rvc_lab.models.synth_spec import spec_from_config
from rvc_lab.models.synthesizer import Synthesizer

if TYPE_CHECKING:
    from rvc_lab.files.voice import VoiceModel


def generator_state_dict(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stored weights -> plain float32 state dict: weight norm folded, ``enc_q.*`` dropped.

    Accepts upstream's ``weight_g``/``weight_v`` pairs and the newer
    ``parametrizations.weight.original0/1`` naming (norm over every dim but 0 in both).
    """
    out: dict[str, torch.Tensor] = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in weights.items():
        if key.startswith("enc_q."):
            continue
        for g_suffix, v_suffix in ((".weight_g", ".weight_v"), (".parametrizations.weight.original0",
                                                                 ".parametrizations.weight.original1")):
            if key.endswith(g_suffix):
                pairs.setdefault(key[: -len(g_suffix)], {})["g"] = t
                break
            if key.endswith(v_suffix):
                pairs.setdefault(key[: -len(v_suffix)], {})["v"] = t
                break
        else:
            out[key] = t.to(torch.float32)
    for layer, gv in pairs.items():
        if set(gv) != {"g", "v"}:
            raise KeyError(f"{layer}: weight-norm pair incomplete (has only {sorted(gv)})")
        # The same primitive upstream's remove_weight_norm evaluates: v * g / ||v||, norm over dims != 0.
        out[f"{layer}.weight"] = torch._weight_norm(gv["v"].to(torch.float32), gv["g"].to(torch.float32), 0)
    return out


def build_synthesizer(voice: "VoiceModel") -> Synthesizer:
    """Build the generator of a loaded voice: eval mode, float32, weight norm folded.

    Every module parameter must come from the file and every stored tensor (except the
    training-only ``enc_q.*``) must be used; anything else raises :class:`ModelFileError`.
    """
    spec = spec_from_config(voice.config, voice.version, voice.if_f0, n_speakers=voice.n_speakers)
    model = Synthesizer(spec)
    try:
        state = generator_state_dict(voice.weights)
    except KeyError as exc:
        raise ModelFileError(voice.path, f"voice model weights incomplete: {exc.args[0]}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            voice.path,
            f"voice model weights do not fit a {spec.version} {'f0' if spec.if_f0 else 'no-f0'} generator: "
            f"missing {_few(missing)}, unexpected {_few(unexpected)}",
        )
    wrong = [k for k in expected if tuple(expected[k].shape) != tuple(state[k].shape)]
    if wrong:
        k = wrong[0]
        raise ModelFileError(
            voice.path, f"voice model tensor {k} has shape {tuple(state[k].shape)}, expected {tuple(expected[k].shape)}"
        )
    model.load_state_dict(state, strict=True)
    return model.eval().float()


def _few(keys: list[str], n: int = 4) -> str:
    if not keys:
        return "none"
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more
