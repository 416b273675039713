"""Checkpoints of SegPIC's official code (``train.py`` saves ``{"state_dict": ...}`` of
``compressai/models/sac.py: SegPIC``) converted to vcm's :class:`SegpicModel`, official layout.

Architecture from the tensor shapes: N and M (the first and last analysis convs), WAM heads and
windows (relative-position tables), ResUnits per WAM branch, the prototype coders' widths per
level, hyper widths, head width, slices, support limit and slice-net widths.

Key map: ``basic_E.i`` / ``basic_D.i`` are the same modules as ``g_a1.0`` ... ``g_s1.2`` (kept
once); the official ``g_s0`` / ``g_s1`` are vcm's ``g_s1`` / ``g_s2``; SAL blocks
``conv_groups.0/1`` -> ``conv`` / ``gdn``, ``scales_bias`` -> ``sal.net``; WAM ``conv_a.i.conv``
-> ``trunk.i.net``, ``conv_b.0.attn`` -> ``attn.attn`` (``relative_position_bias_table`` ->
``rel_bias``), ``conv_b.i`` (i >= 1) -> ``gate.(i-1)``; ``g_ab(2)`` / ``g_sb(2)`` /
``entropy_bottleneck_b(2)`` -> ``protos1(2).g_a`` / ``g_s`` / ``entropy_bottleneck``; RATs
``dyn_encoder``, ``dyn_decoder``, ``dyn_enc_hyper``, ``dyn_dec_hyper_means``,
``dyn_dec_hyper_scales`` -> ``rat_enc``, ``rat_dec``, ``rat_hyper``, ``rat_means``,
``rat_scales`` (``conv``, ``k_sp_gen``, ``k_ch_gen``, ``conv_out`` -> ``ctl``, ``dkg``, ``cag``,
``out``); ChARM ``cc_mean/cc_scale/lrp_transforms`` -> ``charm.mean/scale/lrp_nets``; the fork's
``_matrix0`` (or compressai < 1.2's ``_matrices.0``) -> ``matrices.0``. Coder tables and the
attention's constant index buffers are dropped (vcm rebuilds them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import torch

from vcm.codecs.checkpoint import OFFICIAL_SCALE_LEVELS, TABLES
from vcm.codecs.official import Converted
from vcm.codecs.segpic.model import SegpicConfig, SegpicModel

_MODULES = {"g_s0": "g_s1", "g_s1": "g_s2", "g_ab": "protos1.g_a", "g_sb": "protos1.g_s",
            "entropy_bottleneck_b": "protos1.entropy_bottleneck", "g_ab2": "protos2.g_a", "g_sb2": "protos2.g_s",
            "entropy_bottleneck_b2": "protos2.entropy_bottleneck", "cc_mean_transforms": "charm.mean_nets",
            "cc_scale_transforms": "charm.scale_nets", "lrp_transforms": "charm.lrp_nets",
            "dyn_encoder": "rat_enc", "dyn_decoder": "rat_dec", "dyn_enc_hyper": "rat_hyper",
            "dyn_dec_hyper_means": "rat_means", "dyn_dec_hyper_scales": "rat_scales"}
_INNER = ((r"conv_groups\.0\.", "conv."), (r"conv_groups\.1\.", "gdn."), (r"scales_bias\.", "sal.net."),
          (r"conv_a\.(\d+)\.conv\.", r"trunk.\1.net."),
          (r"conv_b\.0\.attn\.relative_position_bias_table$", "attn.attn.rel_bias"),
          (r"conv_b\.0\.attn\.", "attn.attn."))
_RAT = ((r"^conv\.", "ctl."), (r"^k_sp_gen\.", "dkg."), (r"^k_ch_gen\.", "cag."), (r"^conv_out\.", "out."))
_EB = re.compile(r"^_?(matrix|bias|factor|matrices|biases|factors)\.?(\d+)$")
_PLURAL = {"matrix": "matrices", "bias": "biases", "factor": "factors"}
DROPPED = (*TABLES, "relative_position_index")


def _aliases(key: str) -> str:
    """``basic_E.i`` -> ``g_a1.0`` ... (the official module lists behind the Sequentials)."""
    if m := re.match(r"basic_([ED])\.(\d)\.", key):
        i = int(m.group(2))
        head = f"g_a{1 + i // 2}.{i % 2}." if m.group(1) == "E" else f"g_s{i // 2}.{1 + i % 2}."
        return head + key[m.end():]
    return key


def vcm_key(key: str) -> str | None:
    """vcm's name of an official key (None: dropped); unknown keys come back unchanged."""
    if key.endswith(DROPPED):
        return None
    head, _, rest = _aliases(key).partition(".")
    if head.startswith("dyn_"):
        for pat, rep in _RAT:
            rest = re.sub(pat, rep, rest)
    elif head.startswith("entropy_bottleneck") and (m := _EB.match(rest)):
        rest = f"{_PLURAL.get(m.group(1), m.group(1))}.{m.group(2)}"
    else:
        for pat, rep in _INNER:
            rest = re.sub(pat, rep, rest)
        rest = re.sub(r"conv_b\.(\d+)\.(conv\.)?", lambda m: f"gate.{int(m.group(1)) - 1}.{'net.' if m.group(2) else ''}",
                      rest)
    return f"{_MODULES.get(head, head)}.{rest}"


def _outs(state: Mapping[str, torch.Tensor], prefix: str, dim: int = 0) -> tuple[int, ...]:
    """Widths (``dim`` of ``prefix<i>.weight``) of the layers of a Sequential, in order."""
    idx = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(re.escape(prefix) + r"(\d+)\.weight", k)))
    return tuple(int(state[f"{prefix}{i}.weight"].shape[dim]) for i in idx)


def _window(table: torch.Tensor) -> int:
    """Window size of a relative-position table ((2w - 1)^2, heads)."""
    return (math.isqrt(int(table.shape[0])) + 1) // 2


def infer_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """vcm's official-layout config of a converted state dict (vcm keys), from shapes."""
    n, m = int(state["g_a1.0.conv.weight"].shape[0]), int(state["g_a2.1.conv.weight"].shape[0])
    tables = [state[f"{g}.2.attn.attn.rel_bias"] for g in ("g_a1", "g_a2")]
    synth = {_outs(state, f"protos{k}.g_s.")[:-1] for k in (1, 2)}
    if len(synth) != 1:
        raise ValueError(f"its two prototype synthesis coders differ in width ({sorted(synth)}): vcm shares one")
    slices = len({k.split(".")[2] for k in state if k.startswith("charm.mean_nets.")})
    width = m // slices
    support = max((int(state[f"charm.mean_nets.{i}.0.weight"].shape[1]) - m) // width for i in range(slices))
    return {"n": n, "m": m, "heads": int(tables[0].shape[1]), "windows": [_window(t) for t in tables],
            "proto": list(_outs(state, "protos1.g_a.")), "proto2": list(_outs(state, "protos2.g_a.")),
            "proto_synth": list(synth.pop()), "hyper": list(_outs(state, "h_a.")), "slices": slices,
            "max_support": support, "charm_hidden": list(_outs(state, "charm.mean_nets.0.")[:-1]),
            "wam_units": len({k.split(".")[3] for k in state if k.startswith("g_a1.2.trunk.")}), "rat": True,
            "head": int(state["g_s2.3.weight"].shape[1]), "layout": "official",
            "scale_levels": OFFICIAL_SCALE_LEVELS}


class Converter:
    """The ``segpic`` entry of :data:`vcm.codecs.official.CONVERTERS`."""

    published = ("six MSE models, SegPIC(192, 320), in the authors' Google Drive folder "
                 "https://drive.google.com/drive/folders/1rDyvCVkTiqzCq4urW60OsIKOTLWBp3si")

    def matches(self, state: Mapping[str, torch.Tensor]) -> bool:
        return any(k.startswith("dyn_enc_hyper.") for k in state) and any(k.startswith("g_ab2.") for k in state)

    def convert(self, state: Mapping[str, torch.Tensor]) -> Converted:
        out: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            new = vcm_key(key)
            if new is None:
                continue
            if new in out and not torch.equal(out[new], value):
                raise ValueError(f"{key} differs from the module it names ({new}); the file is inconsistent")
            out[new] = value
        config = infer_config(out)
        notes = tuple(f"{k} {v}" for k, v in config.items() if k not in ("rat", "layout", "scale_levels"))
        return Converted(config, out, ("inferred from shapes: " + ", ".join(notes),))

    def model(self, config: dict[str, Any]) -> SegpicModel:
        return SegpicModel(SegpicConfig.from_dict(config))
