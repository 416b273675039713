"""A binary arithmetic coder (integer, 32-bit interval, 16-bit probabilities) for small side info.

Each symbol is one bit with the probability of a 1 given as an integer ``p1`` in [1, 65535]
(units of 2^-16). The interval update, the renormalisation with pending bits and the two-bit
termination are the textbook integer coder (Witten, Neal and Cleary 1987), written here for vcm.
Unlike compressai's rANS (which flushes a 64-bit state and pads to 32-bit words, about 47 bits
per record) it ends within a byte of the information content. Everything is integer arithmetic,
so encoder and decoder agree on every platform.

The decoder knows exactly how many bits the encoder wrote (2 more than its renormalisation
shifts), so a record that is truncated, has trailing bytes or non-zero padding is detected.
"""

from __future__ import annotations

import numpy as np

PROB_BITS = 16
PROB_ONE = 1 << PROB_BITS
_TOP = (1 << 32) - 1
_HALF = 1 << 31
_QUARTER = 1 << 30


class CoderError(ValueError):
    """The bytes are not a complete record of this coder (truncated, trailing or bad padding)."""


def _split(low: int, high: int, p1: int) -> int:
    """Last value of the 0-symbol's part of [low, high]."""
    if not 0 < p1 < PROB_ONE:
        raise ValueError(f"p1 must be in [1, {PROB_ONE - 1}], got {p1}")
    return low + (((high - low + 1) * (PROB_ONE - p1)) >> PROB_BITS) - 1


class BitEncoder:
    """Encode bits with :meth:`encode`, then :meth:`finish` for the bytes."""

    def __init__(self) -> None:
        self.low, self.high, self.pending = 0, _TOP, 0
        self.bits: list[int] = []

    def _emit(self, bit: int) -> None:
        self.bits.append(bit)
        self.bits.extend([bit ^ 1] * self.pending)
        self.pending = 0

    def encode(self, bit: int, p1: int) -> None:
        """Code ``bit`` (0 or 1) whose probability of being 1 is ``p1`` / 2^16."""
        split = _split(self.low, self.high, p1)
        if bit:
            self.low = split + 1
        else:
            self.high = split
        while True:
            if self.high < _HALF:
                self._emit(0)
            elif self.low >= _HALF:
                self._emit(1)
                self.low, self.high = self.low - _HALF, self.high - _HALF
            elif self.low >= _QUARTER and self.high < _HALF + _QUARTER:
                self.pending += 1
                self.low, self.high = self.low - _QUARTER, self.high - _QUARTER
            else:
                return
            self.low, self.high = self.low << 1, self.high << 1 | 1

    def finish(self) -> bytes:
        """Terminate (two bits select a value inside the final interval) and pad with zeros."""
        self.pending += 1
        self._emit(0 if self.low < _QUARTER else 1)
        return np.packbits(np.array(self.bits, np.uint8)).tobytes()


class BitDecoder:
    """Decode the bits of :class:`BitEncoder`; call :meth:`finish` after the last one."""

    def __init__(self, data: bytes) -> None:
        self.data = np.unpackbits(np.frombuffer(data, np.uint8)).tolist()
        self.low, self.high, self.pos, self.shifts = 0, _TOP, 32, 0
        self.value = int.from_bytes((bytes(data) + bytes(4))[:4], "big")

    def _next(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1] if self.pos <= len(self.data) else 0

    def decode(self, p1: int) -> int:
        """The next bit, coded with the same ``p1`` as at the encoder."""
        split = _split(self.low, self.high, p1)
        bit = int(self.value > split)
        if bit:
            self.low = split + 1
        else:
            self.high = split
        while True:
            if self.high < _HALF:
                pass
            elif self.low >= _HALF:
                self.low, self.high, self.value = self.low - _HALF, self.high - _HALF, self.value - _HALF
            elif self.low >= _QUARTER and self.high < _HALF + _QUARTER:
                self.low, self.high, self.value = self.low - _QUARTER, self.high - _QUARTER, self.value - _QUARTER
            else:
                return bit
            self.low, self.high = self.low << 1, self.high << 1 | 1
            self.value = self.value << 1 | self._next()
            self.shifts += 1

    def finish(self) -> None:
        """Raise :class:`CoderError` unless the record had exactly the encoder's bits and zero padding."""
        written = self.shifts + 2
        if len(self.data) != 8 * -(-written // 8):
            raise CoderError(f"record has {len(self.data) // 8} bytes, its symbols need {-(-written // 8)}")
        if any(self.data[written:]):
            raise CoderError("record has non-zero padding")
