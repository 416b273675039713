"""EMIC invariant (a): attention over the visible subset equals dense masked attention."""

import torch

from vcm.codecs.emic.attention import (
    decay_bias,
    decay_log_gammas,
    dense_masked_attention,
    dpisa,
    dpisa_reference,
    manhattan,
    pisa,
)


def _grid(h: int, w: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # (h*w, 2) as (x, y)


def test_gammas_follow_the_rmt_schedule() -> None:
    g = decay_log_gammas(4).exp()
    assert torch.allclose(g, torch.tensor([1 - 2**-2, 1 - 2**-3, 1 - 2**-4, 1 - 2**-5]))


def test_sampled_decay_equals_full_grid_decay_indexed() -> None:
    coords = _grid(6, 7)
    full = manhattan(coords, coords)
    idx = torch.tensor([0, 5, 9, 17, 40, 41])
    assert torch.equal(full[idx][:, idx], manhattan(coords[idx], coords[idx]))


def test_pisa_on_visible_subset_equals_dense_masked_attention() -> None:
    torch.manual_seed(0)
    b, heads, d, gh, gw = 2, 3, 8, 6, 5
    coords = _grid(gh, gw).expand(b, -1, -1)
    n = gh * gw
    q, k, v = (torch.randn(b, heads, n, d) for _ in range(3))
    visible = torch.rand(b, n) < 0.4
    visible[:, 0] = True
    log_gamma = decay_log_gammas(heads)
    dense = dense_masked_attention(q, k, v, coords, log_gamma, visible)
    for i in range(b):
        idx = visible[i].nonzero().squeeze(1)
        sub = pisa(q[i:i + 1, :, idx], k[i:i + 1, :, idx], v[i:i + 1, :, idx], coords[i:i + 1, idx], log_gamma)
        assert (sub - dense[i:i + 1, :, idx]).abs().max() < 1e-5
    # the decay really matters: dropping it changes the output
    flat = dense_masked_attention(q, k, v, coords, torch.zeros(heads), visible)
    assert (flat - dense)[visible[:, None].expand(-1, heads, -1)].abs().max() > 1e-3


def test_dpisa_matches_its_reference_and_ignores_padded_units() -> None:
    torch.manual_seed(1)
    b, heads, n_mu, n_au, d = 2, 2, 5, 4, 8
    q, k, v = (torch.randn(b, heads, n_mu, n_au, d) for _ in range(3))
    mu = torch.randint(0, 10, (b, n_mu, 2))
    au = _grid(2, 2)
    lg = decay_log_gammas(heads)
    out = dpisa(q, k, v, mu, au, lg)
    assert (out - dpisa_reference(q, k, v, mu, au, lg)).abs().max() < 1e-5
    # two padded MUs appended: the real MUs' outputs do not change
    pad = lambda t: torch.cat([t, torch.randn(b, heads, 2, n_au, d)], 2)
    padding = torch.zeros(b, n_mu + 2, dtype=torch.bool)
    padding[:, n_mu:] = True
    mu_pad = torch.cat([mu, torch.randint(0, 10, (b, 2, 2))], 1)
    padded = dpisa(pad(q), pad(k), pad(v), mu_pad, au, lg, mu_padding=padding)
    assert (padded[:, :, :n_mu] - out).abs().max() < 1e-5


def test_dpisa_with_one_attention_unit_is_pisa() -> None:
    torch.manual_seed(2)
    q, k, v = (torch.randn(1, 2, 6, 1, 4) for _ in range(3))
    mu = torch.randint(0, 8, (1, 6, 2))
    lg = decay_log_gammas(2)
    out = dpisa(q, k, v, mu, torch.zeros(1, 2, dtype=torch.long), lg)
    ref = pisa(q[:, :, :, 0], k[:, :, :, 0], v[:, :, :, 0], mu, lg)
    assert (out[:, :, :, 0] - ref).abs().max() < 1e-5
    assert decay_bias(mu, lg).shape == (1, 2, 6, 6)


def test_dpisa_chunking_does_not_change_results() -> None:
    torch.manual_seed(3)
    q, k, v = (torch.randn(2, 2, 9, 4, 8) for _ in range(3))
    mu = torch.randint(0, 12, (2, 9, 2))
    lg = decay_log_gammas(2)
    whole = dpisa(q, k, v, mu, _grid(2, 2), lg)
    for budget in (1, 100, 500):
        assert (dpisa(q, k, v, mu, _grid(2, 2), lg, max_logits=budget) - whole).abs().max() < 1e-6


def test_windowed_dpisa_matches_dense_windowed_reference() -> None:
    torch.manual_seed(4)
    b, heads, n_mu, n_au, d = 2, 2, 40, 4, 8
    q, k, v = (torch.randn(b, heads, n_mu, n_au, d) for _ in range(3))
    mu = torch.randint(0, 20, (b, n_mu, 2))  # spans more than 3 tiles, so windowing matters
    lg = decay_log_gammas(heads)
    for window in (2, 3, 5):
        out = dpisa(q, k, v, mu, _grid(2, 2), lg, window=window)
        assert (out - dpisa_reference(q, k, v, mu, _grid(2, 2), lg, window=window)).abs().max() < 1e-5
    assert (dpisa(q, k, v, mu, _grid(2, 2), lg, window=3) - dpisa(q, k, v, mu, _grid(2, 2), lg)).abs().max() > 1e-3
    # padded MUs are ignored as keys by the windowed path too
    padding = torch.zeros(b, n_mu, dtype=torch.bool)
    padding[1, 30:] = True
    out = dpisa(q, k, v, mu, _grid(2, 2), lg, mu_padding=padding, window=3)
    ref = dpisa_reference(q[1:, :, :30], k[1:, :, :30], v[1:, :, :30], mu[1:, :30], _grid(2, 2), lg, window=3)
    assert (out[1:, :, :30] - ref).abs().max() < 1e-5


def test_window_covering_all_units_equals_global_attention() -> None:
    torch.manual_seed(5)
    q, k, v = (torch.randn(1, 2, 12, 4, 8) for _ in range(3))
    mu = torch.randint(0, 8, (1, 12, 2))  # extent <= 7 < window 8
    lg = decay_log_gammas(2)
    assert torch.equal(dpisa(q, k, v, mu, _grid(2, 2), lg, window=8), dpisa(q, k, v, mu, _grid(2, 2), lg))


def test_memory_lean_block_equals_the_plain_block(monkeypatch) -> None:
    """Inference on large inputs runs block-wise; it must compute the same function."""
    from vcm.codecs.emic import transform
    from vcm.codecs.emic.tokens import Tokens

    torch.manual_seed(6)
    block = transform.EmicBlock(16, 2, window=3).eval()
    xy = torch.randint(0, 12, (1, 30, 2))
    pad = torch.zeros(1, 30, dtype=torch.bool)
    pad[0, 25:] = True
    t = Tokens(torch.randn(1, 30, 4, 16), xy, pad, 2)
    with torch.no_grad():
        plain = block(t).x
        monkeypatch.setattr(transform, "LEAN_ELEMENTS", 200)  # forces several slot and MU groups
        lean = block(t).x
    assert (lean - plain)[0, :25].abs().max() < 1e-5


def test_bias_cache_gives_identical_outputs_and_computes_each_bias_once(monkeypatch) -> None:
    """Issue 16 (c): blocks of one token set reuse its position biases; the outputs are the same
    bits as without a cache, also when the cache is too small to keep anything."""
    from vcm.codecs.emic import attention

    torch.manual_seed(7)
    q, k, v = (torch.randn(2, 2, 40, 4, 8) for _ in range(3))
    mu = torch.randint(0, 20, (2, 40, 2))
    padding = torch.zeros(2, 40, dtype=torch.bool)
    padding[1, 30:] = True
    calls = []
    real = attention.pair_bias
    monkeypatch.setattr(attention, "pair_bias", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    for window in (0, 3):
        want = dpisa(q, k, v, mu, _grid(2, 2), decay_log_gammas(2), padding, window=window, max_logits=2000)
        for room in (attention.CACHE_ELEMENTS, 0):
            cache = attention.BiasCache(room)
            for heads_again in range(3):  # three blocks with equal heads (equal, not the same, decay tensors)
                calls.clear()
                got = dpisa(q, k, v, mu, _grid(2, 2), decay_log_gammas(2), padding, window=window, max_logits=2000,
                            cache=cache)
                assert torch.equal(got, want)
                assert (len(calls) == 0) == (heads_again > 0 and room > 0)
            kept = sum(attention._elements(e) for e in cache.entries.values())
            assert cache.room >= 0 and kept == room - cache.room and (kept > 0) == (room > 0)
    other = attention.BiasCache()
    dpisa(q, k, v, mu, _grid(2, 2), decay_log_gammas(2), padding, window=3, cache=other)
    calls.clear()
    dpisa(q[:, :1], k[:, :1], v[:, :1], mu, _grid(2, 2), decay_log_gammas(1), padding, window=3, cache=other)
    assert calls  # other heads (another decay): biases of their own


def test_token_sets_share_their_bias_cache_along_with_x() -> None:
    from vcm.codecs.emic.tokens import Tokens

    t = Tokens(torch.randn(1, 3, 4, 8), torch.zeros(1, 3, 2, dtype=torch.long), torch.zeros(1, 3, dtype=torch.bool), 2)
    assert t.with_x(torch.randn(1, 3, 1, 16), 1).biases is t.biases
    assert Tokens(t.x, t.mu_xy, t.pad, 2).biases is not t.biases
