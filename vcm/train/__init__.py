"""Training of learned codecs: ``vcm train CONFIG`` (one loop shared by every learned codec)."""

from vcm.train.base import LEARNED, LearnedCodec, RDResult

LEARNED.register_lazy("emic", "vcm.codecs.emic.rd:EmicLearned")

__all__ = ["LEARNED", "LearnedCodec", "RDResult"]
