"""Decoder fuzzing: mutate a codec's payload, re-pack it with a valid checksum (so the decoder
itself, not the container's CRC, meets the garbage) and count what decoding does.

    python -m vcm.codecs.fuzz CODEC '{"quality": 50}' N SEED     # prints {"outcome": count, ...}

Outcomes: ``ok`` (an image of the header's size), ``BitstreamError`` (the promised error),
``slow`` (a decode over 5 s), any other exception's name (a bug). A crash kills the process:
run it in a child process (``tests/test_fuzz.py``, ``benchmarks/fuzz_decoders.py``).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np

SLOW_S = 5.0


def mutate(sections: tuple[bytes, ...], rng: np.random.Generator) -> tuple[bytes, ...]:
    """One of: flip 1-8 random bits, overwrite a run with random bytes, cut or extend a section,
    swap two sections; in a random non-empty section."""
    out = [bytearray(s) for s in sections]
    live = [i for i, s in enumerate(out) if s] or [0]
    i, kind = int(rng.choice(live)), int(rng.integers(5))
    s = out[i]
    if kind == 0 and s:
        for _ in range(int(rng.integers(1, 9))):
            s[int(rng.integers(len(s)))] ^= 1 << int(rng.integers(8))
    elif kind == 1 and s:
        a = int(rng.integers(len(s)))
        s[a:a + int(rng.integers(1, 17))] = rng.integers(0, 256, min(16, len(s) - a), dtype=np.uint8).tobytes()
    elif kind == 2:
        del s[int(rng.integers(len(s) + 1)):]
    elif kind == 3:
        s += rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8).tobytes()
    elif len(out) > 1:
        j = int(rng.integers(len(out)))
        out[i], out[j] = out[j], out[i]
    return tuple(bytes(x) for x in out)


def fuzz(codec: Any, data: bytes, n: int, seed: int) -> Counter[str]:
    """Decode ``n`` mutations of ``data``'s payload sections and side info (the mask record),
    checksums recomputed; outcome counts."""
    from vcm.codecs.container import BitstreamError, pack, unpack

    c, rng, counts = unpack(data), np.random.default_rng(seed), Counter[str]()
    for _ in range(n):
        *sections, side = mutate((*c.sections, c.side), rng)
        bad = pack(replace(c, sections=tuple(sections), side=side)).data
        t = time.perf_counter()
        try:
            img = codec.decode(bad).image
            ok = img.shape == (c.height, c.width, 3) and img.dtype == np.uint8
            outcome = "ok" if ok else "wrong-shape"
        except BitstreamError:
            outcome = "BitstreamError"
        except Exception as e:  # noqa: BLE001 - counted: any other exception is a finding
            outcome = type(e).__name__
        counts["slow" if time.perf_counter() - t > SLOW_S else outcome] += 1
    return counts


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    import cv2

    return (cv2.resize(rng.random((6, 8, 3)), (88, 72), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def main(argv: list[str]) -> int:
    from vcm.codecs import CODECS
    from vcm.types import Mask

    name, params, n, seed = argv[0], json.loads(argv[1]), int(argv[2]), int(argv[3])
    codec, image = CODECS.build(name, params), _image()
    keep = np.zeros(image.shape[:2], bool)
    keep[10:50, 20:70] = True  # a partial mask: mask records and visible-unit paths are exercised
    kw = {"mask": Mask.from_pixels(keep, 16)} if "mask" in getattr(type(codec), "input_ports", {}) else {}
    print(json.dumps(dict(fuzz(codec, codec.encode(image=image, **kw).data, n, seed))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
