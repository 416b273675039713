"""Image reading and writing with explicit conversions to the canonical uint8 RGB form."""
from vcm.io.image import ImageReadError, load_image, to_rgb8

__all__ = ["ImageReadError", "load_image", "to_rgb8"]
