"""Adaptive binary symbols on compressai's rANS coder: each bit is coded with the probability its
model gives, quantised to one of ``LEVELS`` binary CDFs (uniform in the logit, so rare and
likely symbols both keep their precision; the quantisation costs < 0.2 % over the exact
probabilities). The encoder collects (bit, level) pairs and codes them in one call; the decoder
decodes bit by bit, as the model's next probability depends on the bits before it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

PROB_ONE = 1 << 16  # models give P(bit = 1) as an integer p1 in [1, PROB_ONE - 1]
LEVELS = 256
_LOGIT_MAX = 11.0   # levels span P(1) = 1.7e-5 .. 1 - 1.7e-5
MIN_SYMBOLS = 8


class BinaryRansError(ValueError):
    """The bytes decode to a symbol that is not a bit (a corrupt stream)."""


@lru_cache(maxsize=1)
def _tables() -> tuple[list[list[int]], np.ndarray]:
    """(the CDF of every level, the level of every p1 in [0, PROB_ONE))."""
    from compressai._CXX import pmf_to_quantized_cdf

    logits = np.linspace(-_LOGIT_MAX, _LOGIT_MAX, LEVELS)
    probs = 1 / (1 + np.exp(-logits))
    cdfs = [pmf_to_quantized_cdf([1 - p, p, 1e-9], 16) for p in probs.tolist()]  # 3rd: rANS's escape symbol
    p1 = np.clip(np.arange(PROB_ONE) / PROB_ONE, 0.5 / PROB_ONE, 1 - 0.5 / PROB_ONE)
    level = np.rint((np.log(p1 / (1 - p1)) + _LOGIT_MAX) / (2 * _LOGIT_MAX) * (LEVELS - 1))
    return cdfs, np.clip(level, 0, LEVELS - 1).astype(np.int64)


class BitEncoder:
    """``encode(bit, p1)`` for every bit, then ``finish()`` for the rANS string."""

    def __init__(self) -> None:
        self.bits: list[int] = []
        self.levels: list[int] = []
        self.cdfs, self.level_of = _tables()

    def encode(self, bit: int, p1: int) -> int:
        self.bits.append(bit)
        self.levels.append(int(self.level_of[p1]))
        return bit

    def finish(self) -> bytes:
        from compressai.ans import RansEncoder

        lengths = [len(c) for c in self.cdfs]
        # compressai 1.2.8 sizes its output at one 32-bit word per symbol, too few for the 64-bit
        # flush of a very short string (heap overflow): code at least MIN_SYMBOLS
        pad = [0] * max(0, MIN_SYMBOLS - len(self.bits))
        bits, levels = self.bits + pad, self.levels + [LEVELS // 2] * len(pad)  # (never decoded)
        return bytes(RansEncoder().encode_with_indexes(bits, levels, self.cdfs, lengths, [0] * LEVELS))


class BitDecoder:
    """``decode(p1)`` gives the next bit, with the same ``p1`` as the encoder had."""

    def __init__(self, data: bytes, max_bits: int) -> None:
        from compressai.ans import RansDecoder

        self.cdfs, self.level_of = _tables()
        self.dec = RansDecoder()
        self.dec.set_stream(bytes(data) + bytes(4 * max_bits))  # reads past a corrupt string stay in our memory

    def decode(self, p1: int) -> int:
        cdf = self.cdfs[int(self.level_of[p1])]
        bit = self.dec.decode_stream([0], [cdf], [len(cdf)], [0])[0]
        if bit not in (0, 1):
            raise BinaryRansError("the stream decodes to an escape symbol, not a bit")
        return int(bit)
