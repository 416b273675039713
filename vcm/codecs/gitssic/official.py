"""Checkpoints of the official GIT-SSIC code (Amygyx/GIT-SSIC, ``our_codecs.py``) in vcm's model.

Both official classes, ``GroupChARTTC`` (groups) and ``GroupChARTTC_woStructure`` (one group),
have the same weights; a converted file is the ``released`` layout, which computes exactly what
the released code does with any group map (one group: the ``_woStructure`` model). Key map:

    g_a_pe.i.proj / g_s_pe.i.proj.m.0        -> g_a.embeds.i / g_s.unembeds.i.0
    g_{a,s}_m.i.blocks.j.attn.relative_position_bias_table -> g_{a,s}.layers.i.blocks.j.attn.rel_bias
    ... .mlp.fc1 / .mlp.fc2                   -> ... .mlp.0 / .mlp.2   (norms, qkv, proj: same)
    h_a_m / h_s_m                             -> h_a / h_s
    char_m_means.i / char_m_scales.i          -> charm.mean_nets.i / charm.scale_nets.i
    z_em._prior._base.{matrices,biases,factors}.i (1, C, a, b) -> entropy_bottleneck.*.i (C, a, b)
    z_em._cdf_offset, z_em._cdf_length       -> entropy_bottleneck.quantiles (the table's tails)

The widths, depths, heads, window, MLP ratio, hyper channels and slices come from the shapes.
The official coder tables (``*_cdf*``) are rebuilt from the weights by vcm, identically
(:mod:`.tables`), but the z tails: the official code searches them once (Adam on the prior's
logits) and stores them only in its tables, so they are read from ``z_em._cdf_offset`` and
``z_em._cdf_length``; a file without them gets the tails of vcm's bisection, noted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from vcm.codecs.checkpoint import OFFICIAL_SCALE_LEVELS
from vcm.codecs.gitssic.model import GitSsicConfig, GitSsicModel
from vcm.codecs.gitssic.tables import TAIL, tail_target
from vcm.codecs.official import Converted

_PRIOR = "z_em._prior._base."
_RENAMES = (  # (official pattern, vcm replacement), applied in order to each key
    (r"^g_a_pe\.(\d+)\.proj\.", r"g_a.embeds.\1."),
    (r"^g_s_pe\.(\d+)\.proj\.m\.0\.", r"g_s.unembeds.\1.0."),
    (r"^g_([as])_m\.(\d+)\.blocks\.", r"g_\1.layers.\2.blocks."),
    (r"\.attn\.relative_position_bias_table$", ".attn.rel_bias"),
    (r"\.mlp\.fc1\.", ".mlp.0."),
    (r"\.mlp\.fc2\.", ".mlp.2."),
    (r"^h_([as])_m\.", r"h_\1."),
    (r"^char_m_means\.", "charm.mean_nets."),
    (r"^char_m_scales\.", "charm.scale_nets."),
    (rf"^{re.escape(_PRIOR)}(matrices|biases|factors)\.", r"entropy_bottleneck.\1."),
)
_CONSTANTS = (".bound", ".scale_bound", ".target")  # compressai's fixed buffers, not in official files
_DROPPED = re.compile(r"(relative_position_index|_cdf|_cdf_offset|_cdf_length|_cdf_shape)$")


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def infer_config(state: Mapping[str, torch.Tensor]) -> GitSsicConfig:
    """The released-layout config whose shapes are ``state``'s (KeyError names a missing key)."""
    stages = _count(state, r"g_a_pe\.(\d+)\.")
    dims = tuple(int(state[f"g_a_pe.{i}.proj.weight"].shape[0]) for i in range(stages))
    depths = tuple(_count(state, rf"g_a_m\.{i}\.blocks\.(\d+)\.") for i in range(stages))
    tables = [state[f"g_a_m.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(stages)]
    window = (round(tables[0].shape[0] ** 0.5) + 1) // 2
    hidden = state["g_a_m.0.blocks.0.mlp.fc1.weight"].shape[0]
    widths = {int(state[f"h_a_m.{i}.weight"].shape[0]) for i in (0, 2, 4)}
    if len(widths) != 1:
        raise ValueError(f"official hyper widths {sorted(widths)} differ; vcm's hyper transforms have one width")
    filters = _count(state, rf"{re.escape(_PRIOR)}matrices\.(\d+)") - 1
    if filters != 3:
        raise ValueError(f"official z prior with {filters} filter layers; the official code has 3")
    return GitSsicConfig(dims=dims, depths=depths, heads=tuple(int(t.shape[1]) for t in tables), window=window,
                         mlp_ratio=hidden / dims[0], hyper_channels=widths.pop(),
                         slices=_count(state, r"char_m_means\.(\d+)\."), layout="released",
                         scale_levels=OFFICIAL_SCALE_LEVELS)


def _rename(key: str) -> str:
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def _tails(state: Mapping[str, torch.Tensor], model: GitSsicModel) -> tuple[torch.Tensor, str | None]:
    """quantiles (C, 1, 3) = (lower, 0, upper) of the z table: the official file's, else searched."""
    if "z_em._cdf_offset" in state and "z_em._cdf_length" in state:
        lo = state["z_em._cdf_offset"].float()
        hi = lo + state["z_em._cdf_length"].float() - 3
        return torch.stack([lo, torch.zeros_like(lo), hi], -1)[:, None], None
    eb = model.entropy_bottleneck
    q = eb.quantiles.detach().clone()
    for col, target in ((0, float(tail_target()[0])), (2, float(tail_target()[2]))):
        q[:, 0, col] = _bisect(lambda v: eb._grid_logits(v[None])[0], target, q.shape[0])
    return q, f"z tails not in the file: searched by bisection for a tail mass of {TAIL:g} (the official " \
              "code's Adam search may round a tail to another integer)"


def _bisect(logits: Any, target: float, channels: int, steps: int = 60) -> torch.Tensor:
    """Per channel, the x where the (increasing) cumulative logits reach ``target``."""
    lo, hi = torch.full((channels,), -1e4), torch.full((channels,), 1e4)
    with torch.no_grad():
        for _ in range(steps):
            mid = (lo + hi) / 2
            above = logits(mid) > target
            lo, hi = torch.where(above, lo, mid), torch.where(above, mid, hi)
    return (lo + hi) / 2


class Converter:
    """The ``gitssic`` entry of :data:`vcm.codecs.official.CONVERTERS`."""

    published = ("the authors' Google Drive folder "
                 "https://drive.google.com/drive/folders/1hmZYSdVnjyPzAx5OYaoudOpSkz3EylYG")

    def matches(self, state: Mapping[str, torch.Tensor]) -> bool:
        return "g_a_pe.0.proj.weight" in state and "char_m_means.0.0.weight" in state

    def model(self, config: dict[str, Any]) -> GitSsicModel:
        return GitSsicModel(GitSsicConfig.from_dict(config))

    def convert(self, state: Mapping[str, torch.Tensor]) -> Converted:
        cfg = infer_config(state)
        model = GitSsicModel(cfg)
        out = {_rename(k): v for k, v in state.items() if not _DROPPED.search(k) and not k.startswith("y_em.")}
        for k in [k for k in out if k.startswith("entropy_bottleneck.")]:
            out[k] = out[k][0]  # (1, C, a, b) -> (C, a, b)
        out |= {k: v.clone() for k, v in model.state_dict().items() if k.endswith(_CONSTANTS)}
        out["entropy_bottleneck.quantiles"], note = _tails(state, _loaded(model, out))
        notes = (f"dims {list(cfg.dims)}, depths {list(cfg.depths)}, heads {list(cfg.heads)}, window {cfg.window}, "
                 f"mlp_ratio {cfg.mlp_ratio:g}, hyper {cfg.hyper_channels}, {cfg.slices} slices (from shapes)",
                 "layout released: the released code's computation (one z per image, summed window labels); "
                 "one group is the official _woStructure model",
                 *((note,) if note else ()))
        return Converted(cfg.to_dict(), out, notes)


def _loaded(model: GitSsicModel, state: dict[str, torch.Tensor]) -> GitSsicModel:
    """``model`` with the z prior's weights of ``state`` (for the tail search)."""
    prior = {k.removeprefix("entropy_bottleneck."): v for k, v in state.items()
             if k.startswith(("entropy_bottleneck.matrices.", "entropy_bottleneck.biases.", "entropy_bottleneck.factors."))}
    model.entropy_bottleneck.load_state_dict(prior, strict=False)
    return model
