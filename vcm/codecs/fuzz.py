"""Decoder fuzzing: mutate a codec's bitstream, re-pack it with a valid checksum (so the decoder
itself, not the container's CRC, meets the garbage) and count what decoding does.

    python -m vcm.codecs.fuzz CODEC '{"quality": 50}' N SEED [clip]
    # prints {"counts": {"outcome": count, ...}, "peak_mb": ..., "max_s": ...}

A third of the mutations lie about the image size in the header (larger, smaller or odd; the
payload intact), the rest change the payload sections or the mask record. ``clip`` fuzzes a
clip codec's ``decode_clip``. Outcomes: ``ok`` (images of the header's size), ``BitstreamError``
(the promised error), ``slow`` (a decode over 5 s), ``big`` (a decode that raised the process's
peak RSS 2 GB over its RSS before the decode), ``memory`` (an allocation refused at the child's address
space cap, warm-up + 4 GB, which keeps the machine safe), any other exception's name (a bug).
A crash kills the process: run it in a child process (``tests/test_fuzz.py``,
``benchmarks/fuzz_decoders.py``).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

SLOW_S = 5.0
BIG_BYTES = 2 << 30  # a decode that costs more than this for a stream under 100 KB is a finding
CAP_BYTES = 4 << 30  # address space the child may add after its warm-up
MAX_SIDE = 1 << 14


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


def lie(height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
    """Another image size for the header: larger (each side x1..x64, as 256x256 -> 4096x512),
    smaller (/2../64) or odd (a few pixels off, sides swapped); 1..16384 a side."""
    kind = int(rng.integers(3))
    if kind == 0:
        fh, fw = (1 << int(v) for v in rng.integers(0, 7, 2))
        h, w = height * fh, width * max(fw, 2 if fh == 1 else 1)
    elif kind == 1:
        h, w = (max(1, s >> int(rng.integers(1, 7))) for s in (height, width))
    else:
        h, w = (s + int(rng.integers(-9, 10)) for s in ((width, height) if rng.random() < 0.3 else (height, width)))
    h, w = (min(max(v, 1), MAX_SIDE) for v in (h, w))
    return (h, w) if (h, w) != (height, width) else (height + 1, width)


@dataclass
class FuzzResult:
    counts: Counter[str] = field(default_factory=Counter)
    peak_bytes: int = 0  # largest growth of the peak RSS during one decode, bytes
    max_s: float = 0.0  # slowest decode, seconds

    def to_json(self) -> str:
        return json.dumps({"counts": dict(self.counts), "peak_mb": round(self.peak_bytes / 2**20, 1),
                           "max_s": round(self.max_s, 3)})


def memory_status(key: str) -> int:
    """A /proc/self/status memory figure in bytes (Linux), else the peak RSS from getrusage."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> int:
    """Reset the peak RSS to the current RSS (Linux clear_refs) and return it, bytes; where it
    cannot be reset, the peak itself (growth is then measured from the highest point so far)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return memory_status("VmHWM")
    return memory_status("VmRSS")


def _cap_address_space() -> None:
    """Let the process grow by :data:`CAP_BYTES` more at most (Linux: /proc/self/statm)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
    except OSError:
        return
    limit = pages * resource.getpagesize() + CAP_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _outcome(decode: Any, data: bytes, shape: tuple[int, int]) -> str:
    from vcm.codecs.container import BitstreamError

    try:
        out = decode(data)
        images = [d.image for d in out] if isinstance(out, list) else [out.image]
        ok = images and all(i.shape == (*shape, 3) and i.dtype == np.uint8 for i in images)
        return "ok" if ok else "wrong-shape"
    except BitstreamError as e:
        return "memory" if "allocate memory" in str(e) else "BitstreamError"
    except MemoryError:
        return "memory"
    except Exception as e:  # noqa: BLE001 - counted: any other exception is a finding
        return "memory" if "allocate memory" in str(e) else type(e).__name__


def fuzz(decode: Any, data: bytes, n: int, seed: int) -> FuzzResult:
    """Decode ``n`` mutations of ``data`` (see the module docstring), checksums recomputed."""
    from vcm.codecs.container import pack, unpack

    c, rng, result = unpack(data), np.random.default_rng(seed), FuzzResult()
    decode(data)  # warm-up: allocator pools, coder tables
    _cap_address_space()
    for _ in range(n):
        if rng.random() < 1 / 3:
            h, w = lie(c.height, c.width, rng)
            bad = replace(c, height=h, width=w)
        else:
            *sections, side = mutate((*c.sections, c.side), rng)
            bad = replace(c, sections=tuple(sections), side=side)
        before, t = reset_peak(), time.perf_counter()
        outcome = _outcome(decode, pack(bad).data, (bad.height, bad.width))
        seconds, grown = time.perf_counter() - t, memory_status("VmHWM") - before
        outcome = "big" if grown > BIG_BYTES else outcome
        result.counts["slow" if seconds > SLOW_S else outcome] += 1
        result.peak_bytes, result.max_s = max(result.peak_bytes, grown), max(result.max_s, seconds)
    return result


def _image(frame: int = 0) -> np.ndarray:
    rng = np.random.default_rng(frame)
    import cv2

    return (cv2.resize(rng.random((6, 8, 3)), (88, 72), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def main(argv: list[str]) -> int:
    from vcm.codecs import CODECS
    from vcm.types import Mask

    name, params, n, seed = argv[0], json.loads(argv[1]), int(argv[2]), int(argv[3])
    codec, clip = CODECS.build(name, params), argv[4:] == ["clip"]
    keep = np.zeros((72, 88), bool)
    keep[10:50, 20:70] = True  # a partial mask: mask records and visible-unit paths are exercised
    mask = Mask.from_pixels(keep, 16) if "mask" in getattr(type(codec), "input_ports", {}) else None
    if clip:
        frames = [_image(i) for i in range(4)]
        data = codec.encode_clip(frames=frames, masks=[mask] * 4 if mask else None).data
        print(fuzz(codec.decode_clip, data, n, seed).to_json())
        return 0
    data = codec.encode(image=_image(), **({"mask": mask} if mask else {})).data
    print(fuzz(codec.decode, data, n, seed).to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
