"""Long decoder fuzzing run: every codec decodes mutated payloads and mask records (checksums
recomputed, so the decoders meet the garbage), each codec in its own child process.

    python benchmarks/fuzz_decoders.py                  # 10,000 per classical codec, 1,000 per learned one
    python benchmarks/fuzz_decoders.py --scale 0.05     # a quick pass

Prints counts by outcome; the target is 0 crashes, 0 decodes over 5 s, 0 outcomes other than an
image or a BitstreamError. Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
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
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every mutation count")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"{'codec':<12} {'mutations':>9} {'ok':>7} {'Bitstream':>9} {'slow':>5} {'other':>6} {'crash':>6} {'s':>6}")
    missed = False
    for label, params, n in CODECS:
        n = max(1, round(n * args.scale))
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "vcm.codecs.fuzz", label.split("-")[0], json.dumps(params),
                              str(n), str(args.seed)], capture_output=True, text=True)
        counts = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}
        other = sum(v for k, v in counts.items() if k not in ("ok", "BitstreamError", "slow"))
        crash = int(out.returncode != 0)
        missed |= bool(other or crash or counts.get("slow"))
        print(f"{label:<12} {n:>9} {counts.get('ok', 0):>7} {counts.get('BitstreamError', 0):>9} "
              f"{counts.get('slow', 0):>5} {other:>6} {crash:>6} {time.perf_counter() - t:>6.0f}"
              + (f"  {out.stderr.strip().splitlines()[-1][:80]}" if crash and out.stderr.strip() else ""))
    return int(missed)


if __name__ == "__main__":
    sys.exit(main())
