"""Encode one image with a mask, decode it from the bytes alone, and print the rate split.

    VCM_ASSETS=../shared/assets python examples/encode_one_image.py [IMAGE]
"""

import sys

from vcm.codecs import CODECS
from vcm.io import load_image
from vcm.masks import MASKS
from vcm.metrics.quality import psnr

path = sys.argv[1] if len(sys.argv) > 1 else "../shared/assets/data/kodak/kodim23.png"
image = load_image(path)
mask = MASKS.build("damask", {"visible_ratio": 0.3})(image=image, sample_id=path)
encoder = CODECS.build("jpeg", {"quality": 60, "mode": "masked", "fill": "blur"})
bitstream = encoder.encode(image=image, mask=mask)
decoded = CODECS.build("jpeg", {"quality": 60, "mode": "masked"}).decode(bitstream.data)

pixels = image.shape[0] * image.shape[1]
print(f"{path}: {image.shape[1]}x{image.shape[0]}, {mask.visible_fraction:.0%} of units kept")
print(f"bytes: header {bitstream.header_bytes}, mask side info {bitstream.side_bytes}, payload {bitstream.payload_bytes}")
print(f"bpp {8 * len(bitstream.data) / pixels:.4f} (side info {8 * bitstream.side_bytes / pixels:.4f})")
print(f"PSNR inside mask {psnr(image, decoded.image, decoded.mask.coded_pixels()):.2f} dB")
