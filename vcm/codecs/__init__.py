"""Codecs: image (+ mask) -> real bytes -> image, each part of the rate measured from bytes."""

from vcm.codecs.base import CODECS, Codec
from vcm.codecs.container import BitstreamError

CODECS.register_lazy("jpeg", "vcm.codecs.pillow:jpeg")
CODECS.register_lazy("webp", "vcm.codecs.pillow:webp")
CODECS.register_lazy("avif", "vcm.codecs.pillow:avif")
CODECS.register_lazy("hevc", "vcm.codecs.standard:hevc", extra="video")
CODECS.register_lazy("avc", "vcm.codecs.standard:avc", extra="video")
CODECS.register_lazy("av1", "vcm.codecs.standard:av1", extra="video")
CODECS.register_lazy("vp9", "vcm.codecs.standard:vp9", extra="video")
CODECS.register_lazy("vvc", "vcm.codecs.standard:vvc", extra="video")
CODECS.register_lazy("compressai", "vcm.codecs.compressai:compressai_codec")
CODECS.register_lazy("emic", "vcm.codecs.emic.codec:emic")
CODECS.register_lazy("gitssic", "vcm.codecs.gitssic.codec:gitssic")
CODECS.register_lazy("mcm", "vcm.codecs.mcm.codec:mcm")
CODECS.register_lazy("segpic", "vcm.codecs.segpic.codec:segpic")

__all__ = ["CODECS", "BitstreamError", "Codec"]
