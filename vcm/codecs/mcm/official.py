"""Checkpoints of MCM's official code (``main_compress.py`` saves ``{"model": state_dict, ...}``
of ``compressai/models/MCM.py``) converted to vcm's :class:`McmModel` in the official layout.

Architecture from the tensor shapes: patch and encoder width (``patch_embed.proj``), depths
(``blocks.N`` / ``decoder_blocks.N``), decoder width, MLP ratio, the 1x1 analysis widths, the
hyper widths, slices, support limit and slice-net widths, and the position table's grid. The
attention heads are not in any shape: MCM's defaults (12 encoder, 16 decoder) unless the
converter (or the ``mcm`` factory's ``heads``) says otherwise.

Key map: timm ``Block`` -> ``nn.TransformerEncoderLayer`` (``attn.qkv`` -> ``self_attn.in_proj``,
q, k, v stacked in the same order; ``attn.proj`` -> ``out_proj``; ``mlp.fc1/fc2`` ->
``linear1/2``); the 16x16 conv patch embedding -> a Linear on (p, p, 3)-flattened patches; the
cls token absorbs its position (``cls_token + pos_embed[:, :1]``, what MCM adds at run time);
``pos_embed[:, 1:]`` / ``decoder_pos_embed[:, 1:]`` -> the stored tables; the ChARM nets
``cc_mean/cc_scale/lrp_transforms`` -> ``charm.mean/scale/lrp_nets``; the fork's
``entropy_bottleneck._matrix0`` (or compressai < 1.2's ``_matrices.0``) -> ``matrices.0``. The
VGG16 of MCM's training loss (``vgg.*``) and the coder tables are dropped; compressai's
constant buffers come from fresh modules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from vcm.codecs.checkpoint import OFFICIAL_SCALE_LEVELS, TABLES
from vcm.codecs.mcm.model import McmConfig, McmModel
from vcm.codecs.official import Converted

HEADS = (12, 16)  # MCM's num_heads, decoder_num_heads
DROPPED = ("vgg.",)  # MCM's training loss network
_BLOCK = (("attn.qkv.weight", "self_attn.in_proj_weight"), ("attn.qkv.bias", "self_attn.in_proj_bias"),
          ("attn.proj.", "self_attn.out_proj."), ("mlp.fc1.", "linear1."), ("mlp.fc2.", "linear2."),
          ("norm1.", "norm1."), ("norm2.", "norm2."))
_PREFIXES = (("blocks.", "encoder.blocks."), ("decoder_blocks.", "decoder.blocks."), ("norm.", "encoder.norm."),
             ("decoder_norm.", "decoder.norm."), ("decoder_embed.", "decoder.embed."),
             ("decoder_pred.", "decoder.pred."), ("patch_embed.proj.bias", "encoder.embed.bias"),
             ("mask_token", "decoder.mask_token"), ("cc_mean_transforms.", "charm.mean_nets."),
             ("cc_scale_transforms.", "charm.scale_nets."), ("lrp_transforms.", "charm.lrp_nets."),
             ("g_a.", "g_a."), ("g_s.", "g_s."), ("h_a.", "h_a."), ("h_mean_s.", "h_mean_s."),
             ("h_scale_s.", "h_scale_s."), ("entropy_bottleneck.quantiles", "entropy_bottleneck.quantiles"))
_EB = re.compile(r"entropy_bottleneck\.(_?)(matrix|bias|factor|matrices|biases|factors)\.?(\d+)")
_PLURAL = {"matrix": "matrices", "bias": "biases", "factor": "factors"}
_FOLDED = ("patch_embed.proj.weight", "cls_token", "pos_embed", "decoder_pos_embed")


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of ``prefix<N>.`` modules (N = 0, 1, ...)."""
    found = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


def _convs(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[int, ...]:
    """Output widths of the convs ``prefix<N>.weight`` (Sequential with GELUs between), in order."""
    idx = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(re.escape(prefix) + r"(\d+)\.weight", k)))
    return tuple(int(state[f"{prefix}{i}.weight"].shape[0]) for i in idx)


def infer_config(state: Mapping[str, torch.Tensor], heads: tuple[int, int] = HEADS) -> dict[str, Any]:
    """vcm's official-layout config of an official state dict (from shapes; ``heads`` given)."""
    dim, _, patch, _ = state["patch_embed.proj.weight"].shape
    m, slices = int(state["h_a.0.weight"].shape[1]), _count(state, "cc_mean_transforms.")
    support = max((int(state[f"cc_mean_transforms.{i}.0.weight"].shape[1]) - m) // (m // slices)
                  for i in range(slices))
    return {"patch": int(patch), "enc_dim": int(dim), "enc_depth": _count(state, "blocks."), "enc_heads": heads[0],
            "dec_dim": int(state["decoder_embed.weight"].shape[0]), "dec_depth": _count(state, "decoder_blocks."),
            "dec_heads": heads[1], "mlp_ratio": int(state["blocks.0.mlp.fc1.weight"].shape[0]) / int(dim),
            "analysis": list(_convs(state, "g_a.")), "hyper": list(_convs(state, "h_a.")), "slices": slices,
            "max_support": support, "charm_hidden": list(_convs(state, "cc_mean_transforms.0.")[:-1]),
            "order": "sampling", "layout": "official", "pos_grid": math.isqrt(int(state["pos_embed"].shape[1]) - 1),
            "scale_levels": OFFICIAL_SCALE_LEVELS}


def vcm_key(key: str) -> str | None:
    """vcm's name of an official key placed one to one (None: folded, dropped or unknown)."""
    if m := _EB.fullmatch(key):
        kind = m.group(2)
        return f"entropy_bottleneck.{_PLURAL.get(kind, kind)}.{m.group(3)}"
    for old, new in _PREFIXES:
        if key.startswith(old):
            key = new + key[len(old):]
            break
    else:
        return None
    if m := re.match(r"(encoder|decoder)\.blocks\.\d+\.", key):
        rest = key[m.end():]
        rest = next((v + rest[len(k):] for k, v in _BLOCK if rest.startswith(k)), None)
        return None if rest is None else m.group(0) + rest
    return key


def convert_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """vcm state dict (no coder tables) of an official one; ValueError naming keys it cannot place."""
    out: dict[str, torch.Tensor] = {}
    unplaced = []
    for k, v in state.items():
        if k in _FOLDED or k.startswith(DROPPED) or k.endswith(TABLES) or _constant(k):
            continue
        if (name := vcm_key(k)) is None:
            unplaced.append(k)
        else:
            out[name] = v
    if unplaced:
        more = f" (+{len(unplaced) - 6} more)" if len(unplaced) > 6 else ""
        raise ValueError(f"official MCM checkpoint has keys vcm's model has no place for: "
                         f"{', '.join(sorted(unplaced)[:6])}{more}")
    w = state["patch_embed.proj.weight"]
    out["encoder.embed.weight"] = w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)  # (D, p, p, 3): vcm's patchify
    out["encoder.cls"] = state["cls_token"] + state["pos_embed"][:, :1]
    out["encoder.positions.pos"] = state["pos_embed"][0, 1:]
    out["decoder.positions.pos"] = state["decoder_pos_embed"][0, 1:]
    return out | _constants(out["entropy_bottleneck.quantiles"].shape[0])


def _constant(key: str) -> bool:
    """compressai's constant buffers (bounds, targets), taken from fresh modules instead."""
    return key.startswith(("entropy_bottleneck.", "gaussian_conditional.")) and \
        key.rsplit(".", 1)[-1] in ("bound", "target", "scale_bound")


def _constants(channels: int) -> dict[str, torch.Tensor]:
    fresh = {"entropy_bottleneck": EntropyBottleneck(channels), "gaussian_conditional": GaussianConditional(None)}
    state = {f"{name}.{k}": v for name, mod in fresh.items() for k, v in mod.state_dict().items()}
    return {k: v for k, v in state.items() if _constant(k)}


class Converter:
    """The ``mcm`` entry of :data:`vcm.codecs.official.CONVERTERS`; ``heads`` = (encoder,
    decoder) attention heads, which the shapes do not tell (MCM's defaults)."""

    published = "none released (train with the official main_compress.py; its checkpoint-*.pth files load)"

    def __init__(self, heads: tuple[int, int] = HEADS) -> None:
        self.heads = heads

    def matches(self, state: Mapping[str, torch.Tensor]) -> bool:
        return all(k in state for k in ("patch_embed.proj.weight", "g_a.0.weight", "cc_mean_transforms.0.0.weight",
                                        "decoder_pred.weight"))

    def convert(self, state: Mapping[str, torch.Tensor]) -> Converted:
        config = infer_config(state, self.heads)
        notes = (f"architecture inferred from shapes: {config['enc_dim']}-wide ViT, {config['enc_depth']} blocks, "
                 f"decoder {config['dec_dim']} x {config['dec_depth']}, latent {config['analysis'][-1]} in "
                 f"{config['slices']} slices, positions for {config['pos_grid']}^2 patches",
                 f"attention heads not in the shapes: encoder {self.heads[0]}, decoder {self.heads[1]} "
                 f"(MCM's defaults; the mcm factory's heads: overrides)",
                 "dropped: vgg.* (training loss network) and the coder tables (rebuilt from the weights)")
        return Converted(config, convert_state(state), notes)

    def model(self, config: dict[str, Any]) -> torch.nn.Module:
        return McmModel(McmConfig.from_dict(config))
