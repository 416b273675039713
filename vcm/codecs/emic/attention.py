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
"""

from __future__ import annotations

import math

import torch


def decay_log_gammas(num_heads: int, init_value: float = 2.0, heads_range: float = 4.0) -> torch.Tensor:
    """log(gamma_h) per head, float (num_heads,); gamma_h in (0, 1)."""
    h = torch.arange(num_heads, dtype=torch.float64)
    gamma = 1.0 - torch.pow(2.0, -init_value - heads_range * h / num_heads)
    return torch.log(gamma).float()


def manhattan(coords_a: torch.Tensor, coords_b: torch.Tensor) -> torch.Tensor:
    """|dx| + |dy| between (..., n, 2) and (..., m, 2) integer coordinates -> (..., n, m)."""
    return (coords_a[..., :, None, :] - coords_b[..., None, :, :]).abs().sum(-1).to(torch.float32)


def decay_bias(coords: torch.Tensor, log_gamma: torch.Tensor) -> torch.Tensor:
    """Additive logit bias (..., heads, n, n) from coordinates (..., n, 2)."""
    dist = manhattan(coords, coords)
    return dist.unsqueeze(-3) * log_gamma.view(-1, 1, 1).to(dist)


def pisa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, coords: torch.Tensor,
         log_gamma: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
    """Attention over visible tokens with the decay sampled at their positions.

    Args:
        q, k, v: (B, H, n, d).
        coords: (B, n, 2) grid coordinates of the tokens.
        log_gamma: (H,) log decay per head.
        key_padding: optional bool (B, n), True for padding tokens to ignore as keys.
    Returns:
        (B, H, n, d).
    """
    bias = decay_bias(coords, log_gamma)  # (B, H, n, n)
    if key_padding is not None:
        bias = bias.masked_fill(key_padding[:, None, None, :], float("-inf"))
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
    return torch.softmax(logits, dim=-1) @ v


def dense_masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, coords: torch.Tensor,
                           log_gamma: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Reference: attention over *all* grid tokens with invisible keys masked out (-inf).

    Shapes as :func:`pisa` with n = all grid tokens; ``visible`` bool (B, n). Rows of
    invisible queries are computed too (callers compare visible rows).
    """
    return pisa(q, k, v, coords, log_gamma, key_padding=~visible)


def dpisa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mu_coords: torch.Tensor,
          au_coords: torch.Tensor, log_gamma: torch.Tensor,
          mu_padding: torch.Tensor | None = None, max_logits: int = 2**26) -> torch.Tensor:
    """Decomposed PISA on MU-major tokens.

    Args:
        q, k, v: (B, H, n_mu, n_au, d), tokens of visible mask units.
        mu_coords: (B, n_mu, 2) mask-unit grid coordinates.
        au_coords: (n_au, 2) attention-unit coordinates inside a mask unit.
        log_gamma: (H,).
        mu_padding: optional bool (B, n_mu), True for padded (absent) mask units.
        max_logits: step 1 runs over chunks of query units so that at most this many logits
            exist at once (memory bound for large images; results do not depend on it).
    Returns:
        (B, H, n_mu, n_au, d).
    """
    b, h, n_mu, n_au, d = q.shape
    # step 1: across mask units, one sequence per attention-unit slot
    qa, ka, va = (t.transpose(2, 3) for t in (q, k, v))  # (B, H, n_au, n_mu, d)
    chunk = max(1, max_logits // max(1, b * h * n_au * n_mu))
    parts = []
    for s in range(0, n_mu, chunk):
        rows = slice(s, min(s + chunk, n_mu))
        bias = manhattan(mu_coords[:, rows], mu_coords)[:, None] * log_gamma.view(-1, 1, 1)  # (B, H, c, n_mu)
        if mu_padding is not None:
            bias = bias.masked_fill(mu_padding[:, None, None, :], float("-inf"))
        logits = qa[:, :, :, rows] @ ka.transpose(-1, -2) / math.sqrt(d) + bias[:, :, None]
        parts.append(torch.softmax(logits, dim=-1) @ va)
    v1 = torch.cat(parts, dim=3).transpose(2, 3)  # (B, H, n_mu, n_au, d)
    # step 2: inside each mask unit, across its attention units
    bias_au = decay_bias(au_coords, log_gamma)[None, :, None]  # (1, H, 1, n_au, n_au)
    attn_au = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias_au, dim=-1)
    return attn_au @ v1


def dpisa_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mu_coords: torch.Tensor,
                    au_coords: torch.Tensor, log_gamma: torch.Tensor) -> torch.Tensor:
    """Loop form of :func:`dpisa` built from :func:`pisa` calls (for tests)."""
    b, h, n_mu, n_au, d = q.shape
    v1 = torch.empty_like(v)
    for a in range(n_au):
        v1[:, :, :, a] = pisa(q[:, :, :, a], k[:, :, :, a], v[:, :, :, a], mu_coords, log_gamma)
    out = torch.empty_like(v)
    au = au_coords.expand(b, n_au, 2)
    for m in range(n_mu):
        out[:, :, m] = pisa(q[:, :, m], k[:, :, m], v1[:, :, m], au, log_gamma)
    return out
