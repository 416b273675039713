from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vcm.io import ImageReadError, load_image


def test_grayscale_rgba_16bit_palette(tmp_path: Path) -> None:
    gray = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert (out[..., 0] == gray).all() and (out[..., 2] == gray).all()

    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.shape == (5, 7, 3) and (out[..., 0] == 200).all()  # alpha dropped, colour kept

    g16 = np.full((4, 6), 65535, np.uint16)
    g16[0, 0] = 0
    Image.fromarray(g16).save(tmp_path / "w.png")
    out = load_image(tmp_path / "w.png")
    assert out.shape == (4, 6, 3) and out[1, 1, 0] == 255 and out[0, 0, 0] == 0

    Image.fromarray(gray, "L").convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (20, 30, 3)


def test_corrupt_missing_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        load_image(tmp_path / "bad.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_exif_orientation_is_an_option(tmp_path) -> None:
    """Stored pixel order by default; upright (as viewers show it) with exif=True."""
    import numpy as np
    from PIL import Image

    from vcm.io import load_image

    im = Image.fromarray(np.zeros((20, 30, 3), np.uint8))
    tags = im.getexif()
    tags[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    im.save(tmp_path / "r.jpg", exif=tags)
    assert load_image(tmp_path / "r.jpg").shape == (20, 30, 3)
    assert load_image(tmp_path / "r.jpg", exif=True).shape == (30, 20, 3)


def test_corrupt_annotations_name_the_file(tmp_path) -> None:
    import pytest

    from vcm.data.coco import quiet_coco

    (tmp_path / "a.json").write_text('{"images": [')
    with pytest.raises(ValueError, match=r"COCO annotations .*a.json cannot be read: JSONDecodeError"):
        quiet_coco(tmp_path / "a.json")
