"""SegPIC building blocks: RAT (DPSConv against a direct loop, residual identity when its kernel
generator outputs zero), SAL blocks, prototype pooling per segment and per grid cell."""

import torch

from vcm.codecs.segpic.rat import (
    DownSAL,
    RegionAdaptiveTransform,
    UpSAL,
    grid_expand,
    grid_pool,
    mask_expand,
    mask_pool,
)


def test_dpsconv_equals_a_per_pixel_loop() -> None:
    torch.manual_seed(0)
    rat = RegionAdaptiveTransform(3, 2)
    f1, kernels = torch.randn(2, 3, 5, 6), torch.randn(2, 3 * 9, 5, 6)
    out = rat.dpsconv(f1, kernels)
    padded = torch.nn.functional.pad(f1, (1, 1, 1, 1))
    k = kernels.view(2, 3, 9, 5, 6)
    ref = torch.zeros_like(out)
    for y in range(5):
        for x in range(6):
            window = padded[:, :, y:y + 3, x:x + 3].reshape(2, 3, 9)
            ref[:, :, y, x] = (k[:, :, :, y, x] * window).sum(-1)
    assert torch.allclose(out, ref, atol=1e-5)


def test_rat_is_a_residual_identity_when_its_kernels_are_zero() -> None:
    torch.manual_seed(0)
    rat = RegionAdaptiveTransform(8, 4)
    last = rat.dkg[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    x, proto = torch.randn(2, 8, 6, 7), torch.randn(2, 4, 6, 7)
    assert torch.allclose(rat(x, proto), x + rat.out.bias.view(1, -1, 1, 1), atol=1e-6)
    torch.nn.init.normal_(last.weight)  # non-zero kernels: the prototype now changes the output
    assert not torch.allclose(rat(x, proto), rat(x, torch.zeros_like(proto)))


def test_sal_blocks_shapes_and_identity_affine() -> None:
    torch.manual_seed(0)
    down, up = DownSAL(3, 8), UpSAL(8, 4)
    x = torch.randn(1, 3, 32, 48)
    y = down(x)
    assert y.shape == (1, 8, 16, 24) and up(y).shape == (1, 4, 32, 48)
    torch.nn.init.zeros_(down.sal.net[-1].weight)
    torch.nn.init.zeros_(down.sal.net[-1].bias)
    assert torch.allclose(down(x), down.gdn(down.conv(x)))  # s = b = 0: the plain block


def test_prototypes_per_segment_and_per_grid_cell() -> None:
    torch.manual_seed(0)
    f = torch.randn(2, 5, 8, 8)
    seg = torch.randint(0, 4, (2, 8, 8))
    seg[1][seg[1] == 3] = 2  # segment 3 empty in image 1
    p = mask_pool(f, seg, 4)
    assert p.shape == (2, 4, 5)
    for b in range(2):
        for r in range(4):
            sel = seg[b] == r
            want = f[b][:, sel].sum(1) / (sel.sum() + 5e-4)
            assert torch.allclose(p[b, r], want, atol=1e-5)
    assert torch.equal(p[1, 3], torch.zeros(5))
    e = mask_expand(p, seg)
    assert e.shape == f.shape and torch.equal(e[0, :, 2, 3], p[0, seg[0, 2, 3]])
    g = grid_pool(f, 4)
    assert torch.allclose(g[0, :, 1, 2], f[0, :, 2:4, 4:6].mean((1, 2)), atol=1e-6)
    assert torch.equal(grid_expand(g, 8, 8)[0, :, 3, 5], g[0, :, 1, 2])


def test_wam_keeps_shape_and_mixes_within_windows_only() -> None:
    """Without shift, a change in one 4x4 window leaves other windows' attention branch alone;
    the output keeps the input's shape."""
    from vcm.codecs.segpic.wam import WAM

    torch.manual_seed(0)
    wam = WAM(8, 2, 4, 0).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[..., 0, 0] += 1.0
    with torch.no_grad():
        ax = wam.attn(x.permute(0, 2, 3, 1), torch.zeros(1, 8, 8, dtype=torch.long))
        ay = wam.attn(y.permute(0, 2, 3, 1), torch.zeros(1, 8, 8, dtype=torch.long))
        assert wam(x).shape == x.shape
    changed = (ax - ay).abs().amax(-1)[0] > 1e-6
    assert changed[:4, :4].any() and not changed[4:, :].any() and not changed[:, 4:].any()


def _tiny(**kw):
    from vcm.codecs.segpic.model import SegpicConfig, SegpicModel

    cfg = SegpicConfig(n=16, m=24, heads=2, windows=(4, 2), proto=(16, 8), hyper=(24, 20, 16, 16, 12),
                       slices=3, max_support=2, charm_hidden=(16,), **kw)
    return SegpicModel(cfg)


def test_segpic_trains_with_masks_and_codes_without_them() -> None:
    """Forward with segment masks (privileged information) and without; compress / decompress
    from the strings alone equals the eval forward pass without a mask (grid prototypes);
    RAT-free BL codes two strings, SegPIC four."""
    torch.manual_seed(0)
    for rat, n_strings in ((True, 4), (False, 2)):
        model = _tiny(rat=rat)
        x = torch.rand(1, 3, 64, 128)
        seg = torch.randint(0, 3, (1, 64, 128))
        out = model(x, seg)
        assert out["x_hat"].shape == x.shape and ("p1" in out["likelihoods"]) == rat
        model.update(force=True)
        model.eval()
        strings = model.compress(x)
        assert len(strings) == n_strings
        with torch.no_grad():
            ref = model(x)["x_hat"]
            dec = model.decompress(strings, 64, 128)
        assert torch.allclose(dec, ref, atol=1e-4)


def test_segpic_codec_odd_size_no_mask_port_and_corrupt_bytes(tmp_path) -> None:
    import numpy as np
    import pytest

    from vcm.codecs import CODECS, BitstreamError
    from vcm.codecs.segpic.codec import save_segpic_checkpoint
    from vcm.types import Mask

    torch.manual_seed(0)
    model = _tiny()
    model.update(force=True)
    codec = CODECS.build("segpic", {"checkpoint": str(save_segpic_checkpoint(model, tmp_path / "s.pth"))})
    assert set(codec.input_ports) == {"image"}
    img = (np.random.default_rng(0).random((75, 101, 3)) * 255).astype(np.uint8)
    bs = codec.encode(image=img)
    assert bs.data == codec.encode(image=img).data and bs.side_bytes == 0
    assert codec.decode(bs.data).image.shape == img.shape
    with pytest.raises(ValueError, match="no mask"):
        codec.encode(image=img, mask=Mask.full(75, 101))
    for cut in (3, len(bs.data) // 2, len(bs.data) - 1):
        with pytest.raises(BitstreamError):
            codec.decode(bs.data[:cut])
    rng = np.random.default_rng(1)
    for _ in range(60):  # random byte flips: a clear error or an image, never a crash
        bad = bytearray(bs.data)
        bad[int(rng.integers(len(bad)))] ^= int(rng.integers(1, 256))
        try:
            out = codec.decode(bytes(bad)).image
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        except BitstreamError:
            pass


def test_graph_refuses_to_wire_a_mask_to_segpic(tmp_path, assets) -> None:
    import pytest

    from vcm.config import parse_experiment
    from vcm.pipeline.graph import GraphError
    from vcm.pipeline.runner import prepare

    repo = __import__("pathlib").Path(__file__).resolve().parents[2]

    def cfg(pipeline: str, grid: dict) -> object:
        return parse_experiment({"name": "t", "pipeline": str(repo / "pipelines" / pipeline),
                                 "dataset": {"type": "coco", "root": str(assets / "data" / "coco-mini"), "limit": 1},
                                 "grid": grid, "output_dir": str(tmp_path)})

    codec, task = [{"type": "segpic", "checkpoint": "x.pth"}], [{"type": "yolov8_seg"}]
    with pytest.raises(GraphError, match="takes no mask"):
        prepare(cfg("mask_codec_task.yaml", {"mask": [{"type": "none"}], "codec": codec, "task": task}))
    prepare(cfg("codec_task.yaml", {"codec": codec + [{"type": "jpeg"}], "task": task}))  # no mask: fine


def test_segpic_trains_through_vcm_train_with_masks_or_grid(tmp_path) -> None:
    """Two steps each way; crops come with segment maps; the weights load as the codec."""
    import numpy as np

    from vcm.codecs import CODECS
    from vcm.train.config import parse_train
    from vcm.train.data import CropSampler
    from vcm.train.loop import train

    tiny = {"n": 16, "m": 24, "heads": 2, "windows": [4, 2], "proto": [16, 8], "hyper": [24, 20, 16, 16, 12],
            "slices": 3, "max_support": 2, "charm_hidden": [16]}
    for mode in ("masks", "grid"):
        raw = {"name": "t", "output_dir": str(tmp_path / mode), "device": "cpu", "log_every": 1,
               "codec": {"type": "segpic", "prototypes": mode, **tiny},
               "data": {"crop": 64, "batch_size": 2, "limit": 3, "masks": [{"type": "gt"}]},
               "rates": [{"name": "q", "lmbda": 0.01, "steps": 2}]}
        path = train(parse_train(raw), progress=False)["q"]
        log = (tmp_path / mode / "q" / "log.csv").read_text().splitlines()
        assert len(log) == 3 and float(log[-1].split(",")[2]) > 0
        codec = CODECS.build("segpic", {"checkpoint": str(path)})
        img = (np.random.default_rng(0).random((40, 70, 3)) * 255).astype(np.uint8)
        assert codec.decode(codec.encode(image=img).data).image.shape == img.shape
    cfg = parse_train(raw)
    sampler = CropSampler(cfg.data, 16, np.random.default_rng(0), segments=True)
    _, seg = sampler.batch(torch.device("cpu"))
    assert seg.shape == (2, 64, 64) and seg.dtype == torch.int64
    assert all(torch.equal(torch.unique(s), torch.arange(int(s.max()) + 1)) for s in seg)  # contiguous ids
