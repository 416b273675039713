"""GIT-SSIC group window attention: groups never see each other, shifted windows included."""

import torch

from vcm.codecs.gitssic.attention import (
    GroupWindowAttention,
    allowed_pairs,
    window_partition,
    window_reverse,
)


def _block(att: GroupWindowAttention, x: torch.Tensor, groups: torch.Tensor, ws: int, shift: int) -> torch.Tensor:
    """One attention pass over (B, H, W, C) tokens with an optional cyclic shift."""
    h, w = x.shape[1:3]
    if shift:
        x, groups = (torch.roll(t, (-shift, -shift), (1, 2)) for t in (x, groups))
    out = window_reverse(att(window_partition(x, ws), allowed_pairs(groups, ws, shift)), ws, h, w)
    return torch.roll(out, (shift, shift), (1, 2)) if shift else out


def test_perturbing_one_group_leaves_the_others_unchanged() -> None:
    torch.manual_seed(0)
    ws, h, w, c = 4, 16, 16, 8
    att = GroupWindowAttention(c, 2, ws)
    groups = torch.zeros(1, h, w, dtype=torch.long)
    groups[0, 3:11, 2:9] = 1  # crosses window borders in both the regular and the shifted layout
    groups[0, 12:16, 10:16] = 2
    x = torch.randn(1, h, w, c)
    y = x.clone()
    y[groups == 1] += torch.randn(int((groups == 1).sum()), c)
    for shift in (0, ws // 2):
        a, b = _block(att, x, groups, ws, shift), _block(att, y, groups, ws, shift)
        other = groups != 1
        assert torch.equal(a[other], b[other])
        assert (a[~other] - b[~other]).abs().max() > 1e-3  # the perturbed group does change


def test_shifted_labels_do_not_collide() -> None:
    """Region r with group g + 1 and region r + 1 with group g must stay apart (the released
    code's sum of labels would merge them)."""
    ws, shift = 4, 2
    groups = torch.zeros(1, 8, 8, dtype=torch.long)
    groups[0, :, :6] = 1  # region 0 holds group 1; the wrapped columns (region 1) hold group 0
    allowed = allowed_pairs(groups, ws, shift)
    labels = window_partition(groups[..., None], ws)[..., 0]
    same_group = labels[:, :, None] == labels[:, None, :]
    assert not (allowed & ~same_group).any()
    assert allowed.diagonal(dim1=1, dim2=2).all()
