"""Training of learned codecs: ``vcm train CONFIG`` (one loop shared by every learned codec)."""

from vcm.train.base import LEARNED, LearnedCodec, RDResult

LEARNED.register_lazy("emic", "vcm.codecs.emic.rd:EmicLearned")
LEARNED.register_lazy("gitssic", "vcm.codecs.gitssic.rd:GitSsicLearned")
LEARNED.register_lazy("mcm", "vcm.codecs.mcm.rd:McmLearned")
LEARNED.register_lazy("segpic", "vcm.codecs.segpic.rd:SegpicLearned")
LEARNED.register_lazy("compressai", "vcm.codecs.zoo_rd:ZooLearned")

__all__ = ["LEARNED", "LearnedCodec", "RDResult"]
