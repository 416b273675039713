"""Long decoder fuzzing run: every codec decodes mutated payloads, mask records and headers that
lie about the image size (checksums recomputed, so the decoders meet the garbage), each codec in
its own child process; ``-clip`` rows fuzz a clip codec's whole-clip decoder.

    python benchmarks/fuzz_decoders.py                  # 10,000 per classical codec, 1,000 per learned one
    python benchmarks/fuzz_decoders.py --scale 0.05     # a quick pass

Prints counts by outcome, the largest growth of the peak RSS in one decode (MB) and the slowest
decode (s); the target is 0 crashes, 0 decodes over 5 s or 2 GB, 0 outcomes other than an image or
a BitstreamError. Exit code 1 when a target is missed. Codecs whose extra is not installed
(the video codecs) are listed as skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

W = Path(__file__).resolve().parents[1] / "vcm" / "weights"
CODECS = [
    ("jpeg", {"quality": 50}, 10000), ("webp", {"quality": 50}, 10000), ("avif", {"quality": 50}, 10000),
    ("jpeg-masked", {"quality": 50, "mode": "masked"}, 10000),
    ("compressai", {"arch": "mbt2018-mean", "checkpoint": str(W / "mbt2018-mean-tiny/q1.pth")}, 1000),
    ("emic", {"checkpoint": str(W / "emic-tiny/q1.pth")}, 1000),
    ("gitssic", {"checkpoint": str(W / "gitssic-tiny/q1.pth")}, 1000),
    ("mcm", {"checkpoint": str(W / "mcm-tiny/q1.pth")}, 1000),
    ("segpic", {"checkpoint": str(W / "segpic-tiny/q1.pth")}, 1000),
    ("hevc", {"qp": 37}, 1000), ("hevc-clip", {"qp": 37, "mode": "masked"}, 500), ("avc-clip", {"qp": 37}, 500),
    ("vp9-clip", {"qp": 40}, 300), ("av1-clip", {"qp": 40}, 300),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every mutation count")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"{'codec':<12} {'mutations':>9} {'ok':>7} {'Bitstream':>9} {'slow':>5} {'big':>4} {'other':>6} "
          f"{'crash':>6} {'peak MB':>8} {'max s':>6} {'s':>6}")
    missed = False
    for label, params, n in CODECS:
        missed |= row(label, params, max(1, round(n * args.scale)), args.seed)
    return int(missed)


def row(label: str, params: dict, n: int, seed: int) -> bool:
    """Fuzz one codec in a child process, print its row; True when a target is missed."""
    name, *clip = label.split("-")
    if name in ("hevc", "avc", "vp9", "av1") and importlib.util.find_spec("av") is None:
        print(f"{label:<12} skipped: the video extra (PyAV) is not installed")
        return False
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "vcm.codecs.fuzz", name, json.dumps(params), str(n), str(seed),
                          *(["clip"] if clip == ["clip"] else [])], capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
    counts = result.get("counts", {})
    other = sum(v for k, v in counts.items() if k not in ("ok", "BitstreamError", "slow", "big"))
    crash = int(out.returncode != 0)
    print(f"{label:<12} {n:>9} {counts.get('ok', 0):>7} {counts.get('BitstreamError', 0):>9} "
          f"{counts.get('slow', 0):>5} {counts.get('big', 0):>4} {other:>6} {crash:>6} "
          f"{result.get('peak_mb', float('nan')):>8.1f} {result.get('max_s', float('nan')):>6.2f} "
          f"{time.perf_counter() - t:>6.0f}"
          + (f"  {out.stderr.strip().splitlines()[-1][:80]}" if crash and out.stderr.strip() else ""), flush=True)
    return bool(other or crash or counts.get("slow") or counts.get("big"))


if __name__ == "__main__":
    sys.exit(main())
