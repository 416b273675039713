"""MCM invariants: position records (byte-exact with MCM's procedure), encoder FLOPs that follow
the visible fraction, bytes that match the entropy estimate, separate-process decoding,
corrupt-input errors, empty / full masks and odd image sizes (tiny models, CPU)."""

import heapq
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vcm.codecs import CODECS, BitstreamError
from vcm.codecs.container import unpack
from vcm.codecs.mcm.codec import save_mcm_checkpoint
from vcm.codecs.mcm.model import McmConfig, McmModel, layout
from vcm.codecs.mcm.positions import TABLE, decode_positions, encode_positions, huffman_decode, huffman_encode
from vcm.codecs.mcm.rd import McmLearned, random_visible, visible_ids
from vcm.types import Mask

TINY = McmConfig(enc_dim=32, enc_depth=1, enc_heads=2, dec_dim=16, dec_depth=1, dec_heads=2,
                 analysis=(32, 24), hyper=(24, 16, 16, 12, 8), slices=3, max_support=2, charm_hidden=(12,))
WEIGHTS = Path(__file__).resolve().parents[2] / "vcm" / "weights" / "mcm-tiny"


def mcm_reference_record(ids: list[int], tmp: Path) -> bytes:
    """MCM's evaluation procedure, step by step as documented (brief 5.4): ``np.savetxt`` of the
    (1, V) ids with fmt %d, the file read back and rstripped, a Huffman tree from the fixed table
    built with a heap of frequency-ordered nodes (left = 0), an 8-bit count of padding zeros first."""
    path = tmp / "ids"
    np.savetxt(path, np.array([ids]), fmt="%d")
    text = path.read_text().rstrip()

    class HeapNode:
        def __init__(self, char: str | None, freq: int) -> None:
            self.char, self.freq, self.left, self.right = char, freq, None, None

        def __lt__(self, other: "HeapNode") -> bool:
            return self.freq < other.freq

    heap: list[HeapNode] = []
    for key in TABLE:
        heapq.heappush(heap, HeapNode(key, TABLE[key]))
    while len(heap) > 1:
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        merged = HeapNode(None, a.freq + b.freq)
        merged.left, merged.right = a, b
        heapq.heappush(heap, merged)
    codes: dict[str, str] = {}

    def walk(node: HeapNode | None, code: str) -> None:
        if node is None:
            return
        if node.char is not None:
            codes[node.char] = code
            return
        walk(node.left, code + "0")
        walk(node.right, code + "1")

    walk(heap[0], "")
    bits = "".join(codes[c] for c in text)
    extra = 8 - len(bits) % 8
    bits = "{0:08b}".format(extra) + bits + "0" * extra
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


@pytest.mark.parametrize("ids", [[17, 3, 250, 64, 0, 128, 99, 7], list(range(8)), [1535, 2, 1000, 48, 31, 1534]])
def test_huffman_record_is_byte_exact_with_mcm(ids: list[int], tmp_path: Path) -> None:
    record = huffman_encode(np.array(ids))
    assert record == mcm_reference_record(ids, tmp_path)
    assert huffman_decode(record, 1536).tolist() == ids  # the sending order survives


@pytest.mark.parametrize("coder", ["huffman", "grid"])
def test_positions_decode_exactly(coder: str) -> None:
    rng = np.random.default_rng(0)
    for shape in [(8, 8), (32, 48), (5, 7)]:
        n = shape[0] * shape[1]
        for v in [0, 1, n // 3, n]:
            ids = rng.permutation(n)[:v]
            record, order = encode_positions(ids, shape, coder)
            assert decode_positions(record, shape, coder).tolist() == order.tolist()
            assert sorted(order.tolist()) == sorted(ids.tolist())
            if coder == "grid":
                assert order.tolist() == sorted(ids.tolist())


def test_grid_record_is_cheaper_than_mcms_text_record() -> None:
    ids = np.random.default_rng(1).permutation(48 * 32)[:384]  # Kodak, 25 % visible
    huff, _ = encode_positions(ids, (32, 48), "huffman")
    grid, _ = encode_positions(ids, (32, 48), "grid")
    assert len(grid) < len(huff) / 2


def test_layout_holds_any_count() -> None:
    for v in range(1, 300):
        r, c = layout(v)
        assert r * c >= v and (r - 1) * c < v and abs(r - c) <= 1
    assert layout(64) == (8, 8) and layout(144) == (12, 12)  # MCM's sqrt(V) x sqrt(V)


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_encoder_flops_follow_the_visible_fraction(fraction: float) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = McmModel(McmConfig(enc_dim=64, enc_depth=2, enc_heads=2, dec_dim=32, dec_depth=1, dec_heads=2,
                               analysis=(48, 32), hyper=(32, 24, 24, 16, 16), slices=2, max_support=1,
                               charm_hidden=(16,))).eval()
    x = torch.rand(1, 3, 256, 256)

    def flops(grid: torch.Tensor) -> int:
        ids, pad = visible_ids(grid, "spatial")
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model.g_a(model.encoder(x, ids, pad).transpose(1, 2)[..., None])
        return fc.get_total_flops()

    torch.manual_seed(0)
    full = flops(torch.ones(1, 16, 16, dtype=torch.bool))
    part = flops(random_visible(1, 16, 16, fraction, x.device))
    assert part <= (fraction + 0.05) * full, (part / full)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, assets: Path) -> Path:
    """A tiny model trained for 40 RD steps on Kodak crops, so its scales are in range."""
    from vcm.io import load_image
    from vcm.train.loop import make_optimizers, optimisation_step

    torch.manual_seed(0)
    learned = McmLearned()
    model = learned.build(TINY.to_dict())
    opts = make_optimizers(model, lr=1e-3, aux_lr=1e-2)
    img = torch.from_numpy(load_image(assets / "data" / "kodak" / "kodim23.png")).permute(2, 0, 1)[None].float() / 255
    rng = np.random.default_rng(0)
    for _ in range(40):
        i, j = rng.integers(0, img.shape[2] - 64), rng.integers(0, img.shape[3] - 64)
        grid = torch.from_numpy(rng.random((2, 4, 4)) < 0.6)
        grid[:, 0, 0] = True
        optimisation_step(learned, model, model, img[..., i:i + 64, j:j + 64].repeat(2, 1, 1, 1), grid, 0.5, opts, 1.0)
    for _ in range(300):  # settle the entropy bottleneck's quantiles
        opts[1].zero_grad()
        model.aux_loss().backward()
        opts[1].step()
    model.update(force=True)
    return save_mcm_checkpoint(model, tmp_path_factory.mktemp("mcm") / "tiny.pth")


@pytest.fixture
def image() -> np.ndarray:
    return (np.random.default_rng(0).random((75, 130, 3)) * 255).astype(np.uint8)


def _damask(image: np.ndarray, ratio: float = 0.4) -> Mask:
    from vcm.masks import MASKS

    return MASKS.build("damask", {"visible_ratio": ratio})(image=image, sample_id="x")


@pytest.mark.parametrize("positions", ["huffman", "grid"])
def test_round_trip_odd_size_in_a_separate_process(ckpt: Path, image: np.ndarray, positions: str, tmp_path: Path) -> None:
    codec = CODECS.build("mcm", {"checkpoint": str(ckpt), "positions": positions})
    mask = _damask(image)
    bs = codec.encode(image=image, mask=mask)
    assert bs.data == codec.encode(image=image, mask=mask).data  # deterministic
    dec = codec.decode(bs.data)
    assert dec.image.shape == image.shape and (dec.mask.grid == mask.grid).all()
    assert len(unpack(bs.data).sections) == 2 and bs.side_bytes > 0
    (tmp_path / "bits").write_bytes(bs.data)
    script = ("import sys, numpy as np; from vcm.codecs import CODECS; "
              "c = CODECS.build('mcm', {'checkpoint': sys.argv[1], 'positions': sys.argv[4]}); "
              "np.save(sys.argv[3], c.decode(open(sys.argv[2], 'rb').read()).image)")
    subprocess.run([sys.executable, "-c", script, str(ckpt), str(tmp_path / "bits"), str(tmp_path / "o.npy"), positions],
                   check=True, capture_output=True)
    assert np.array_equal(np.load(tmp_path / "o.npy"), dec.image)


def test_huffman_record_keeps_damasks_sampling_order(ckpt: Path, image: np.ndarray) -> None:
    mask = _damask(image)
    assert mask.order is not None and sorted(mask.order.tolist()) == np.flatnonzero(mask.grid).tolist()
    data = CODECS.build("mcm", {"checkpoint": str(ckpt)}).encode(image=image, mask=mask).data
    sent = huffman_decode(unpack(data).side, mask.grid.size)
    assert sent.tolist() == mask.order.tolist() and sent.tolist() != sorted(sent.tolist())


def test_round_trip_equals_the_forward_pass(ckpt: Path, image: np.ndarray) -> None:
    """The decoder rebuilds the layout, z grid and every ChARM slice (with LRP) from the bytes:
    its image equals the eval-mode forward pass, which rounds as the coder does."""
    from vcm.codecs.emic.tokens import pad_to_unit

    codec = CODECS.build("mcm", {"checkpoint": str(ckpt), "positions": "grid"})
    mask = _damask(image, 0.6)
    dec = codec.decode(codec.encode(image=image, mask=mask).data)
    x = pad_to_unit(torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255, 16)
    ids = torch.from_numpy(np.flatnonzero(mask.grid))[None]
    with torch.no_grad():
        ref = codec.model(x, ids, torch.zeros_like(ids, dtype=torch.bool))["x_hat"]
    ref_img = (ref[0, :, :75, :130].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(ref_img.astype(int) - dec.image).max() <= 1


def test_empty_and_full_masks(ckpt: Path, image: np.ndarray) -> None:
    codec = CODECS.build("mcm", {"checkpoint": str(ckpt)})
    h, w = image.shape[:2]
    empty = codec.encode(image=image, mask=Mask.from_pixels(np.zeros((h, w), bool)))
    dec = codec.decode(empty.data)
    assert empty.payload_bytes == 0 and dec.image.shape == image.shape and not dec.mask.grid.any()
    full = codec.encode(image=image, mask=Mask.full(h, w))
    part = codec.encode(image=image, mask=_damask(image, 0.3))
    assert 0 < part.payload_bytes < full.payload_bytes
    assert codec.decode(full.data).mask.grid.all()
    with pytest.raises(ValueError, match="needs a mask"):
        codec.encode(image=image)


def test_truncated_and_corrupt_bytes_raise_bitstream_error(ckpt: Path, image: np.ndarray) -> None:
    codec = CODECS.build("mcm", {"checkpoint": str(ckpt)})
    data = codec.encode(image=image, mask=_damask(image)).data
    c = unpack(data)
    side_at = len(data) - len(c.side) - sum(map(len, c.sections))
    for cut in (1, 5, len(data) // 2, len(data) - 1):
        with pytest.raises(BitstreamError):
            codec.decode(data[:cut])
    with pytest.raises(BitstreamError):
        codec.decode(data[:side_at] + bytes([0]) + data[side_at + 1:])  # padding count 0: impossible
    with pytest.raises(BitstreamError, match="made by codec"):
        codec.decode(CODECS.build("jpeg", {"quality": 50}).encode(image=image).data)
    from dataclasses import replace

    from vcm.codecs.container import pack

    with pytest.raises(BitstreamError, match="announces a"):  # refused before anything is allocated
        codec.decode(pack(replace(c, height=1 << 30)).data)
    with pytest.raises(BitstreamError, match="whole number of words"):  # rANS reads are unchecked
        codec.decode(pack(replace(c, sections=(c.sections[0][:-1], c.sections[1]))).data)
    with pytest.raises(BitstreamError, match="not a list of patch ids"):  # a 20-digit id
        codec.decode(pack(replace(c, side=huffman_encode(np.array([10**19 + 7])))).data)
    rng = np.random.default_rng(0)
    for _ in range(60):  # random byte flips: a clear error or an image, never a crash
        bad = bytearray(data)
        bad[int(rng.integers(len(bad)))] ^= int(rng.integers(1, 256))
        try:
            out = codec.decode(bytes(bad)).image  # a flipped size field may still be a valid header
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        except BitstreamError:
            pass


def test_trains_through_vcm_train_in_two_stages(tmp_path: Path, image: np.ndarray) -> None:
    from vcm.train.config import parse_train
    from vcm.train.loop import train

    raw = {"name": "t", "output_dir": str(tmp_path), "device": "cpu", "log_every": 1,
           "codec": {"type": "mcm", **TINY.to_dict()},
           "data": {"crop": 64, "batch_size": 2, "limit": 3, "masks": [{"type": "damask", "visible_ratio": [0.2, 0.6]}]},
           "rates": [{"name": "mae", "stage": "mae", "steps": 2}, {"name": "q", "lmbda": 0.5, "steps": 2, "init": "mae"}]}
    paths = train(parse_train(raw), progress=False)
    mae_log = (tmp_path / "mae" / "log.csv").read_text().splitlines()
    rd_log = (tmp_path / "q" / "log.csv").read_text().splitlines()
    assert float(mae_log[-1].split(",")[2]) == 0 and float(rd_log[-1].split(",")[2]) > 0  # bpp only in stage 2
    codec = CODECS.build("mcm", {"checkpoint": str(paths["q"])})
    assert codec.decode(codec.encode(image=image, mask=_damask(image)).data).image.shape == image.shape
    with pytest.raises(ValueError, match="stage 'mea'"):
        train(parse_train({**raw, "rates": [{"name": "x", "stage": "mea", "steps": 1}]}), progress=False)


@pytest.mark.parametrize("rate", ["q1", "q3"])
@pytest.mark.parametrize("visible", [0.25, 1.0])
def test_bytes_match_the_entropy_estimate(rate: str, visible: float, assets: Path) -> None:
    """On the committed weights (Kodak kodim05, 768x512, six 256-px tiles): y + z bytes within 1 %
    of the entropy model's -log2 likelihoods summed over the tiles, plus the rANS coder's fixed
    costs: a 64-bit flush and up to 31 bits of word padding per string (two strings), and 32 bits
    per tile for the spread between estimate and coder measured tile by tile (-7..+27 bits on
    q1; at 0.01 bpp these fixed bits are ~3 % of the payload). Header + position record + payload
    is the whole file."""
    from vcm.codecs.emic.tokens import pad_to_unit
    from vcm.codecs.mcm.codec import sending_order, tile_ids, tiles
    from vcm.io import load_image

    codec = CODECS.build("mcm", {"checkpoint": str(WEIGHTS / f"{rate}.pth")})
    img = load_image(assets / "data" / "kodak" / "kodim05.png")
    mask = _damask(img, visible)
    bs = codec.encode(image=img, mask=mask)
    x = pad_to_unit(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255, 16)
    (gh, gw), est = mask.grid.shape, 0.0
    for r0, c0, th, tw in tiles(gh, gw, 16):
        ids = torch.from_numpy(tile_ids(sending_order(mask), gw, (r0, c0, th, tw)))[None]
        with torch.no_grad():
            out = codec.model(x[..., 16 * r0:16 * (r0 + th), 16 * c0:16 * (c0 + tw)], ids,
                              torch.zeros_like(ids, dtype=torch.bool))
        est += float(-torch.log2(out["likelihoods"]["all"]).sum())
    assert len(unpack(bs.data).sections) == 2  # one y and one z string for the six tiles
    assert abs(8 * bs.payload_bytes - est) <= 0.01 * est + 2 * 96 + 6 * 32, (8 * bs.payload_bytes, est)
    assert bs.header_bytes + bs.side_bytes + bs.payload_bytes == len(bs.data) and bs.header_bytes < 24


def test_tiles_cover_the_image_and_keep_the_sending_order() -> None:
    from vcm.codecs.mcm.codec import tile_ids, tiles

    parts = tiles(30, 40, 16)  # a 640x480 COCO image in 256-px tiles
    assert [(t[2], t[3]) for t in parts] == [(16, 16), (16, 16), (16, 8), (14, 16), (14, 16), (14, 8)]
    assert sum(t[2] * t[3] for t in parts) == 30 * 40 and tiles(30, 40, 0) == [(0, 0, 30, 40)]
    ids = np.random.default_rng(0).permutation(1200)[:300]
    back = []
    for r0, c0, th, tw in parts:
        local = tile_ids(ids, 40, (r0, c0, th, tw))
        back += [(r0 + i // tw) * 40 + c0 + i % tw for i in local]
    assert sorted(back) == sorted(ids.tolist())
    first = tile_ids(ids, 40, parts[0])  # within a tile, the global sending order is kept
    assert [(r * 40 + c) for r, c in zip(first // 16, first % 16)] == [i for i in ids if i // 40 < 16 and i % 40 < 16]
