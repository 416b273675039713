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


@pytest.mark.parametrize("rate", ["q1", "q4"])
def test_bytes_match_the_entropy_estimate(rate: str, assets: Path) -> None:
    """Kodak kodim05 (768x512, no padding): the y, z, p' and p strings within 1 % of the model's
    -log2 likelihoods (eval pass, 4x4-grid prototypes) plus each rANS string's fixed cost (a
    64-bit flush and up to 31 bits of word padding); header + payload is the whole file."""
    from vcm.io import load_image

    codec = CODECS.build("segpic", {"checkpoint": str(WEIGHTS / f"{rate}.pth")})
    img = load_image(assets / "data" / "kodak" / "kodim05.png")
    bs = codec.encode(image=img)
    with torch.no_grad():
        out = codec.model(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255)
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
