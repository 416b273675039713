"""Position-indexed self-attention (PISA) and its decomposed form (DPISA) over visible tokens.

Only visible tokens exist; each carries its original grid coordinates. The spatial prior is a
Manhattan-distance decay, per head h::

    logits[m, n] = q_m . k_n / sqrt(d) + (|x_m - x_n| + |y_m - y_n|) * log(gamma_h)

i.e. the decay gamma^dist multiplies the exp-scores before normalisation. This is the
log-additive form of RMT's reference code; EMIC's text (via secondary summaries) names the same
decay without giving the exact placement. Choice documented here [G], see
shared/design/seed-methods.md section 3.2. gamma_h = 1 - 2^(-init - range * h / heads).

DPISA factorises attention over (mask unit, attention unit): first across visible mask units
for each attention-unit slot (decay over MU coordinates), then inside each mask unit across
its attention units (decay over AU coordinates). Cost O(n_au n_mu^2 + n_mu n_au^2).

Cross-MU window [G]: with ``window`` = R, a query MU attends only to visible MUs within
Chebyshev distance R (|dx| <= R and |dy| <= R, in MU units). The paper does not say how PISA
scales to large images; global attention over V visible MUs is O(V^2) (16k MUs at 2048^2), so
we tile the MU grid into R x R tiles and give each tile's queries the keys of its 3 x 3 tile
neighbourhood, masked to the window: cost O(V R^2). When every MU lies within R of every other
(e.g. training crops of <= R + 1 units a side) the result equals global attention exactly.

Bias cache: the biases depend only on the coordinates (fixed for one token set), the window,
the number of attention units and the heads' decay, not on the features. A :class:`BiasCache`
passed as ``cache`` keeps them (and the window's tiling) for every later block with the same
shapes, so a forward pass computes each once instead of once per block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch

CACHE_ELEMENTS = 2**24  # default bound on the cached bias elements of one token set (64 MB float32)
V = TypeVar("V")


class BiasCache:
    """Position biases of one token set (its MU coordinates and padding never change), keyed by
    what else they depend on: window, number of attention units, query chunk and the decay
    values. Entries that would take the total beyond ``max_elements`` are not kept (computed
    on every call, as without a cache), so memory stays bounded on large images."""

    def __init__(self, max_elements: int = CACHE_ELEMENTS) -> None:
        self.entries: dict[tuple[Any, ...], Any] = {}
        self.room = max_elements

    def get(self, key: tuple[Any, ...], build: Callable[[], V]) -> V:
        """The entry for ``key``, built (and kept while there is room) on the first call."""
        if key in self.entries:
            return self.entries[key]  # type: ignore[no-any-return]
        value = build()
        size = _elements(value)
        if size <= self.room:
            self.entries[key], self.room = value, self.room - size
        return value


def _elements(value: Any) -> int:
    """Tensor elements in a tensor or a (nested) list / tuple of them."""
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, (list, tuple)):
        return sum(_elements(v) for v in value)
    return 0


def _memo(cache: BiasCache | None, key: tuple[Any, ...], build: Callable[[], V]) -> V:
    return build() if cache is None else cache.get(key, build)


def gamma_key(log_gamma: torch.Tensor) -> tuple[Any, ...]:
    """Hashable identity of a decay vector (blocks with equal heads share their biases)."""
    return (str(log_gamma.device), log_gamma.dtype, tuple(log_gamma.tolist()))


def decay_log_gammas(num_heads: int, init_value: float = 2.0, heads_range: float = 4.0) -> torch.Tensor:
    """log(gamma_h) per head, float (num_heads,); gamma_h in (0, 1)."""
    h = torch.arange(num_heads, dtype=torch.float64)
    gamma = 1.0 - torch.pow(2.0, -init_value - heads_range * h / num_heads)
    return torch.log(gamma).float()


def manhattan(coords_a: torch.Tensor, coords_b: torch.Tensor) -> torch.Tensor:
    """|dx| + |dy| between (..., n, 2) and (..., m, 2) integer coordinates -> (..., n, m)."""
    return (coords_a[..., :, None, :] - coords_b[..., None, :, :]).abs().sum(-1).to(torch.float32)


def chebyshev(coords_a: torch.Tensor, coords_b: torch.Tensor) -> torch.Tensor:
    """max(|dx|, |dy|) between (..., n, 2) and (..., m, 2) coordinates -> (..., n, m)."""
    return (coords_a[..., :, None, :] - coords_b[..., None, :, :]).abs().amax(-1)


def pair_bias(coords_q: torch.Tensor, coords_k: torch.Tensor, log_gamma: torch.Tensor,
              window: int = 0) -> torch.Tensor:
    """Decay logit bias (..., heads, n, m) between queries (..., n, 2) and keys (..., m, 2);
    -inf where the keys lie beyond ``window`` (Chebyshev, 0 = no window)."""
    bias = manhattan(coords_q, coords_k).unsqueeze(-3) * log_gamma.view(-1, 1, 1)
    if window:
        bias = bias.masked_fill(chebyshev(coords_q, coords_k).unsqueeze(-3) > window, float("-inf"))
    return bias


def decay_bias(coords: torch.Tensor, log_gamma: torch.Tensor, window: int = 0) -> torch.Tensor:
    """Additive logit bias (..., heads, n, n) from coordinates (..., n, 2); -inf beyond ``window``."""
    return pair_bias(coords, coords, log_gamma, window)


def pisa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, coords: torch.Tensor,
         log_gamma: torch.Tensor, key_padding: torch.Tensor | None = None, window: int = 0) -> torch.Tensor:
    """Attention over visible tokens with the decay sampled at their positions.

    Args:
        q, k, v: (B, H, n, d).
        coords: (B, n, 2) grid coordinates of the tokens.
        log_gamma: (H,) log decay per head.
        key_padding: optional bool (B, n), True for padding tokens to ignore as keys.
        window: if > 0, keys farther than this (Chebyshev) are ignored.
    Returns:
        (B, H, n, d).
    """
    bias = decay_bias(coords, log_gamma, window)  # (B, H, n, n)
    if key_padding is not None:
        bias = bias.masked_fill(key_padding[:, None, None, :], float("-inf"))
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
    return torch.softmax(logits, dim=-1) @ v


def dense_masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, coords: torch.Tensor,
                           log_gamma: torch.Tensor, visible: torch.Tensor, window: int = 0) -> torch.Tensor:
    """Reference: attention over *all* grid tokens with invisible keys masked out (-inf).

    Shapes as :func:`pisa` with n = all grid tokens; ``visible`` bool (B, n). Rows of
    invisible queries are computed too (callers compare visible rows).
    """
    return pisa(q, k, v, coords, log_gamma, key_padding=~visible, window=window)


def dpisa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mu_coords: torch.Tensor,
          au_coords: torch.Tensor, log_gamma: torch.Tensor,
          mu_padding: torch.Tensor | None = None, max_logits: int = 2**26, window: int = 0,
          cache: BiasCache | None = None) -> torch.Tensor:
    """Decomposed PISA on MU-major tokens.

    Args:
        q, k, v: (B, H, n_mu, n_au, d), tokens of visible mask units.
        mu_coords: (B, n_mu, 2) mask-unit grid coordinates.
        au_coords: (n_au, 2) attention-unit coordinates inside a mask unit.
        log_gamma: (H,).
        mu_padding: optional bool (B, n_mu), True for padded (absent) mask units.
        max_logits: step 1 runs over chunks of query units so that at most this many logits
            exist at once (memory bound for large images; results do not depend on it).
        window: cross-MU window R in MU units (0 = global); see the module docstring.
        cache: biases of this token set (same ``mu_coords``, ``mu_padding`` and ``au_coords`` on
            every call with it); None computes them here.
    Returns:
        (B, H, n_mu, n_au, d).
    """
    v1 = cross_mu(q, k, v, mu_coords, log_gamma, mu_padding, max_logits, window, cache)
    return within_mu(q, k, v1, au_coords, log_gamma, cache)


def cross_mu(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mu_coords: torch.Tensor, log_gamma: torch.Tensor,
             mu_padding: torch.Tensor | None = None, max_logits: int = 2**26, window: int = 0,
             cache: BiasCache | None = None) -> torch.Tensor:
    """Step 1 of DPISA: across mask units, one sequence per attention-unit slot.

    Shapes and arguments as :func:`dpisa`; slots are independent, so callers may pass any
    subset of them. Returns (B, H, n_mu, n_au, d).
    """
    qa, ka, va = (t.transpose(2, 3) for t in (q, k, v))  # (B, H, n_au, n_mu, d)
    if window and _memo(cache, ("needs window", window), lambda: _needs_window(mu_coords, mu_padding, window)):
        return _cross_mu_windowed(qa, ka, va, mu_coords, log_gamma, mu_padding, window, cache).transpose(2, 3)
    return _cross_mu_global(qa, ka, va, mu_coords, log_gamma, mu_padding, max_logits, cache).transpose(2, 3)


def within_mu(q: torch.Tensor, k: torch.Tensor, v1: torch.Tensor, au_coords: torch.Tensor,
              log_gamma: torch.Tensor, cache: BiasCache | None = None) -> torch.Tensor:
    """Step 2 of DPISA: inside each mask unit, across its attention units (values from step 1).

    q, k, v1: (B, H, n_mu, n_au, d); MUs are independent. Returns (B, H, n_mu, n_au, d).
    """
    key = ("within", au_coords.shape[0], gamma_key(log_gamma)) if cache is not None else ()
    bias_au = _memo(cache, key, lambda: decay_bias(au_coords, log_gamma)[None, :, None])  # (1, H, 1, n_au, n_au)
    attn_au = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias_au, dim=-1)
    return attn_au @ v1


def _needs_window(mu_coords: torch.Tensor, mu_padding: torch.Tensor | None, window: int) -> bool:
    """False when every real MU is within ``window`` of every other (windowing changes nothing)."""
    xy = mu_coords if mu_padding is None else mu_coords[~mu_padding]
    xy = xy.reshape(-1, 2)
    return bool(len(xy)) and bool(((xy.amax(0) - xy.amin(0)) > window).any())


def _global_bias(mu_coords: torch.Tensor, log_gamma: torch.Tensor, mu_padding: torch.Tensor | None,
                 rows: slice) -> torch.Tensor:
    """Bias (B, H, c, n_mu) of the query MUs ``rows`` against all MUs; -inf on padding keys."""
    bias = pair_bias(mu_coords[:, rows], mu_coords, log_gamma)
    if mu_padding is not None:
        bias = bias.masked_fill(mu_padding[:, None, None, :], float("-inf"))
    return bias


def _cross_mu_global(qa: torch.Tensor, ka: torch.Tensor, va: torch.Tensor, mu_coords: torch.Tensor,
                     log_gamma: torch.Tensor, mu_padding: torch.Tensor | None, max_logits: int,
                     cache: BiasCache | None = None) -> torch.Tensor:
    """Step 1 of DPISA over all MUs, in chunks of query MUs. (B, H, n_au, n_mu, d) -> same."""
    b, h, n_au, n_mu, d = qa.shape
    chunk = max(1, max_logits // max(1, b * h * n_au * n_mu))
    gkey = gamma_key(log_gamma) if cache is not None else ()
    parts = []
    for s in range(0, n_mu, chunk):
        rows = slice(s, min(s + chunk, n_mu))
        bias = _memo(cache, ("global", rows.start, rows.stop, gkey),
                     lambda rows=rows: _global_bias(mu_coords, log_gamma, mu_padding, rows))
        logits = qa[:, :, :, rows] @ ka.transpose(-1, -2) / math.sqrt(d) + bias[:, :, None]
        parts.append(torch.softmax(logits, dim=-1) @ va)
    return torch.cat(parts, dim=3)


def window_tiles(mu_coords: torch.Tensor, mu_padding: torch.Tensor | None,
                 window: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per batch item, per occupied R x R tile: (query MU indices, key MU indices of its 3 x 3
    tile neighbourhood), real MUs only."""
    plan = []
    for i in range(mu_coords.shape[0]):
        real = torch.ones(mu_coords.shape[1], dtype=torch.bool, device=mu_coords.device)
        if mu_padding is not None:
            real = ~mu_padding[i]
        tile = torch.div(mu_coords[i], window, rounding_mode="floor")  # (n_mu, 2)
        plan.append([(((tile == t).all(-1) & real).nonzero().squeeze(1),
                      (((tile - t).abs() <= 1).all(-1) & real).nonzero().squeeze(1))
                     for t in torch.unique(tile[real], dim=0)])
    return plan


def _cross_mu_windowed(qa: torch.Tensor, ka: torch.Tensor, va: torch.Tensor, mu_coords: torch.Tensor,
                       log_gamma: torch.Tensor, mu_padding: torch.Tensor | None, window: int,
                       cache: BiasCache | None = None) -> torch.Tensor:
    """Step 1 of DPISA with a Chebyshev window, tile by tile. (B, H, n_au, n_mu, d) -> same.

    Padded query MUs get zeros (they are never read).
    """
    out = torch.zeros_like(qa)
    scale = 1.0 / math.sqrt(qa.shape[-1])
    plan = _memo(cache, ("tiles", window), lambda: window_tiles(mu_coords, mu_padding, window))
    gkey = gamma_key(log_gamma) if cache is not None else ()
    for i, tiles in enumerate(plan):
        for j, (rows, cols) in enumerate(tiles):
            bias = _memo(cache, ("tile", window, i, j, gkey),  # (H, r, c)
                         lambda i=i, r=rows, c=cols: pair_bias(mu_coords[i, r], mu_coords[i, c], log_gamma, window))
            logits = qa[i][:, :, rows] @ ka[i][:, :, cols].transpose(-1, -2) * scale + bias[:, None]
            out[i][:, :, rows] = torch.softmax(logits, dim=-1) @ va[i][:, :, cols]
    return out


def dpisa_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mu_coords: torch.Tensor,
                    au_coords: torch.Tensor, log_gamma: torch.Tensor, window: int = 0) -> torch.Tensor:
    """Loop form of :func:`dpisa` built from :func:`pisa` calls (for tests)."""
    b, h, n_mu, n_au, d = q.shape
    v1 = torch.empty_like(v)
    for a in range(n_au):
        v1[:, :, :, a] = pisa(q[:, :, :, a], k[:, :, :, a], v[:, :, :, a], mu_coords, log_gamma, window=window)
    out = torch.empty_like(v)
    au = au_coords.expand(b, n_au, 2)
    for m in range(n_mu):
        out[:, :, m] = pisa(q[:, :, m], k[:, :, m], v1[:, :, m], au, log_gamma)
    return out
