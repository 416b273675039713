"""SegPIC codec invariants on the committed tiny weights and on tiny random models: bytes that
match the entropy estimate, separate-process decoding, and no mask at inference (masks are
privileged information: they steer training and never reach the encoder)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.codecs.test_segpic_blocks import _tiny
from vcm.codecs import CODECS
from vcm.codecs.container import unpack

WEIGHTS = Path(__file__).resolve().parents[2] / "vcm" / "weights" / "segpic-tiny"


@pytest.mark.parametrize(("rate", "size"), [("q1", (512, 768)), ("q4", (512, 768)), ("q2", (331, 517))])
def test_bytes_match_the_entropy_estimate(rate: str, size: tuple[int, int], assets: Path) -> None:
    """Kodak kodim05 (768x512, and an odd 517x331 crop padded to 576x384): the y, z, p' and p
    strings within 1 % of the model's -log2 likelihoods (eval pass on the padded canvas, 4x4-grid
    prototypes) plus each rANS string's fixed cost (a 64-bit flush and up to 31 bits of word
    padding); header + payload is the whole file."""
    import torch.nn.functional as F

    from vcm.codecs.segpic.codec import centred_padding
    from vcm.io import load_image

    codec = CODECS.build("segpic", {"checkpoint": str(WEIGHTS / f"{rate}.pth")})
    img = np.ascontiguousarray(load_image(assets / "data" / "kodak" / "kodim05.png")[:size[0], :size[1]])
    bs = codec.encode(image=img)
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = codec.model(F.pad(x, centred_padding(*size), mode=codec.pad_mode))
    est = sum(float(-torch.log2(lik).sum()) for lik in out["likelihoods"].values())
    assert set(out["likelihoods"]) == {"y", "z", "p1", "p2"} and len(unpack(bs.data).sections) == 4
    assert abs(8 * bs.payload_bytes - est) <= 0.01 * est + 4 * 96, (8 * bs.payload_bytes, est)
    assert bs.header_bytes + bs.payload_bytes == len(bs.data) and bs.side_bytes == 0


def test_decodes_bit_identically_in_a_separate_process(assets: Path, tmp_path: Path) -> None:
    """An odd-size crop of a COCO image (centred padding to 64 and back)."""
    from vcm.io import load_image

    ckpt = str(WEIGHTS / "q2.pth")
    codec = CODECS.build("segpic", {"checkpoint": ckpt})
    image = next((assets / "data" / "coco-mini" / "val2017").glob("*.jpg"))
    img = np.ascontiguousarray(load_image(image)[:203, :317])
    bs = codec.encode(image=img)
    dec = codec.decode(bs.data).image
    assert dec.shape == img.shape and bs.data == codec.encode(image=img).data
    (tmp_path / "bits").write_bytes(bs.data)
    script = ("import sys, numpy as np; from vcm.codecs import CODECS; "
              "c = CODECS.build('segpic', {'checkpoint': sys.argv[1]}); "
              "np.save(sys.argv[3], c.decode(open(sys.argv[2], 'rb').read()).image)")
    subprocess.run([sys.executable, "-c", script, ckpt, str(tmp_path / "bits"), str(tmp_path / "o.npy")],
                   check=True, capture_output=True)
    assert np.array_equal(np.load(tmp_path / "o.npy"), dec)
    psnr = 10 * np.log10(255**2 / np.mean((dec.astype(float) - img) ** 2))
    assert psnr > 20, psnr  # the committed weights code a natural image


def test_same_bytes_whatever_masks_steered_training(tmp_path: Path) -> None:
    """Two copies of one network go through training passes (forward + backward, an optimiser
    step with lr 0) with different segment maps: ground-truth-like blobs, random noise, none
    (grid prototypes). Their weights stay equal and they code an image to the same bytes:
    nothing a training mask touches reaches the encoder."""
    from vcm.codecs.segpic.codec import save_segpic_checkpoint

    torch.manual_seed(0)
    ref = _tiny()
    x = torch.rand(2, 3, 64, 64)
    blobs = torch.zeros(2, 64, 64, dtype=torch.long)
    blobs[:, 10:40, 20:50] = 1
    maps = {"blobs": blobs, "noise": torch.randint(0, 7, (2, 64, 64)), "grid": None}
    image = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    data = {}
    for name, seg in maps.items():
        model = _tiny()
        model.load_state_dict(ref.state_dict())
        opt = torch.optim.Adam(model.parameters(), lr=0.0)
        out = model.train()(x, seg)
        sum(-torch.log2(v).sum() for v in out["likelihoods"].values()).backward()
        opt.step()
        model.update(force=True)
        path = save_segpic_checkpoint(model, tmp_path / f"{name}.pth")
        data[name] = CODECS.build("segpic", {"checkpoint": str(path)}).encode(image=image).data
    assert data["blobs"] == data["noise"] == data["grid"]


def test_coding_never_reaches_the_segment_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Encode and decode with the per-segment pooling / expansion made to fail: they are not
    called; ``compress`` takes no segment map at all."""
    import inspect

    from vcm.codecs.segpic import model as segpic_model
    from vcm.codecs.segpic.codec import SegpicCodec

    def leak(*args: object, **kw: object) -> None:
        raise AssertionError("a segment map reached the codec")

    torch.manual_seed(0)
    net = _tiny()
    net.update(force=True)
    monkeypatch.setattr(segpic_model, "mask_pool", leak)
    monkeypatch.setattr(segpic_model, "mask_expand", leak)
    codec = SegpicCodec(net)
    img = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    assert codec.decode(codec.encode(image=img).data).image.shape == img.shape
    assert list(inspect.signature(net.compress).parameters) == ["x"]
    with pytest.raises(AssertionError, match="segment map"):
        net(torch.rand(1, 3, 64, 64), torch.zeros(1, 64, 64, dtype=torch.long))  # training does use it


def test_training_rate_counts_prototypes_of_present_segments_only() -> None:
    """The loss's likelihoods hold both prototype levels; a segment id absent from an image (the
    batch holds the largest count) adds no bits; so does a segment that vanishes at 1/16."""
    torch.manual_seed(0)
    net = _tiny().eval()
    x = torch.rand(2, 3, 64, 64)
    seg = torch.zeros(2, 64, 64, dtype=torch.long)
    seg[0, :, 32:] = 1
    seg[0, :32, :32] = 2  # image 0: three segments
    seg[1, 4:8, 4:8] = 2  # image 1: no segment 1; segment 2 seen at 1/4, gone at 1/16 (nearest)
    with torch.no_grad():
        lik = net(x, seg)["likelihoods"]
    assert {"p1", "p2"} <= set(lik) and lik["p1"].shape[2] == 3  # (B, C, segments, 1)
    assert torch.all(lik["p1"][0] < 1) and torch.all(lik["p2"][0] < 1)
    assert torch.all(lik["p1"][1, :, 1] == 1) and torch.all(lik["p2"][1, :, 1] == 1)  # absent: 0 bits
    assert torch.all(lik["p1"][1, :, 2] < 1) and torch.all(lik["p2"][1, :, 2] == 1)  # vanished at 1/16
