"""Peak memory of each learned decoder per decoded pixel: the figures behind a decode budget.

    python benchmarks/decode_memory.py                 # 128, 256 and 512 px squares
    python benchmarks/decode_memory.py --sides 256 768
    python benchmarks/decode_memory.py --paper         # paper-size random-init models (N 192, M 320 ...)
    python benchmarks/decode_memory.py --kept 0 0.5 1  # masked codecs: one unit, half, all of the frame kept

Each (codec, side) is encoded in one child process and decoded in another: the decoder loads the
codec, decodes a 64 x 64 stream once (warm-up: allocator pools, rANS tables), resets the peak RSS
(Linux /proc/self/clear_refs, so that loading the model does not hide the decode),
decodes the measured stream and notes the peak again. Bytes per pixel = (peak after - peak before) / pixels;
the slope between the two largest sides removes what does not grow with the image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

W = Path(__file__).resolve().parents[1] / "vcm" / "weights"
CODECS = [
    ("compressai", {"arch": "mbt2018-mean", "checkpoint": str(W / "mbt2018-mean-tiny/q2.pth")}),
    ("emic", {"checkpoint": str(W / "emic-tiny/q2.pth")}),
    ("gitssic", {"checkpoint": str(W / "gitssic-tiny/q2.pth")}),
    ("mcm", {"checkpoint": str(W / "mcm-tiny/q2.pth")}),
    ("segpic", {"checkpoint": str(W / "segpic-tiny/q2.pth")}),
]
CHILD = """
import json, sys, time
import numpy as np, torch
from vcm.codecs import CODECS
from vcm.codecs.fuzz import memory_status, reset_peak
from vcm.types import Mask
torch.set_num_threads(1)
name, params, side, path = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
kept = float(sys.argv[5])
codec = CODECS.build(name, params, device=torch.device("cpu"))
def stream(s, kept):
    img = np.random.default_rng(0).integers(0, 256, (s, s, 3), np.uint8)
    keep = np.zeros((s, s), bool)
    keep[:max(16, round(s * kept / 16) * 16), :max(16, s if kept else 16)] = True  # kept 0: one 16-px unit
    kw = {"mask": Mask.from_pixels(keep, 16)} if "mask" in type(codec).input_ports else {}
    return codec.encode(image=img, **kw).data
if side:  # encoder: write the stream and stop
    open(path, "wb").write(stream(side, kept))
    sys.exit()
codec.decode(stream(64, 1.0))
data = open(path, "rb").read()
before, t = reset_peak(), time.perf_counter()  # so that loading the model does not hide the decode
codec.decode(data)
print(json.dumps({"bytes": len(data), "grow": memory_status("VmHWM") - before, "s": time.perf_counter() - t}))
"""


def measure(name: str, params: dict, side: int, kept: float = 1.0) -> dict:
    """Encode a side x side noise image (masked codecs: ``kept`` of its rows) in one child,
    decode it in a fresh one (the encoder's peak would hide the decoder's)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "stream")
        for s in (side, 0):
            out = subprocess.run([sys.executable, "-c", CHILD, name, json.dumps(params), str(s), path, str(kept)],
                                 capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def paper_codecs(folder: Path) -> list[tuple[str, dict]]:
    """Random-init checkpoints of each codec's default (paper / released) architecture."""
    from vcm.codecs.compressai import save_random_checkpoint
    from vcm.codecs.emic.codec import save_emic_checkpoint
    from vcm.codecs.emic.model import EmicConfig, EmicModel
    from vcm.codecs.gitssic.codec import save_gitssic_checkpoint
    from vcm.codecs.gitssic.model import GitSsicConfig, GitSsicModel
    from vcm.codecs.mcm.codec import save_mcm_checkpoint
    from vcm.codecs.mcm.model import McmConfig, McmModel
    from vcm.codecs.segpic.codec import save_segpic_checkpoint
    from vcm.codecs.segpic.model import SegpicConfig, SegpicModel

    made = [("compressai", {"arch": "mbt2018-mean", "checkpoint": str(save_random_checkpoint("mbt2018-mean", 8, folder / "c.pth"))})]
    for name, save, model in [("emic", save_emic_checkpoint, lambda: EmicModel(EmicConfig())),
                              ("gitssic", save_gitssic_checkpoint, lambda: GitSsicModel(GitSsicConfig())),
                              ("mcm", save_mcm_checkpoint, lambda: McmModel(McmConfig())),
                              ("segpic", save_segpic_checkpoint, lambda: SegpicModel(SegpicConfig()))]:
        made.append((name, {"checkpoint": str(save(model(), folder / f"{name}.pth"))}))
    return made


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--paper", action="store_true", help="paper-size random-init models instead of vcm's tiny weights")
    ap.add_argument("--kept", type=float, nargs="+", default=[1.0], help="fractions of the frame a mask keeps")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kept in args.kept:
            print(f"kept {kept:g} of the frame (B/px of the whole frame)" if args.kept != [1.0] else "", end="")
            table(paper_codecs(Path(tmp)) if args.paper else CODECS, args.sides, kept)
    return 0


def table(codecs: list[tuple[str, dict]], sides: list[int], kept: float) -> None:
    """Print bytes per pixel at each side and the slope between the two largest."""
    print(f"\n{'codec':<11} " + " ".join(f"{f'{s}px B/px':>12}" for s in sides) + f" {'slope B/px':>11} {'s at max':>9}")
    for name, params in codecs:
        runs = [measure(name, params, s, kept) for s in sides]
        per = [r["grow"] / s**2 for r, s in zip(runs, sides)]
        a, b = sides[-2:]
        slope = (runs[-1]["grow"] - runs[-2]["grow"]) / (b * b - a * a)
        print(f"{name:<11} " + " ".join(f"{p:>12.0f}" for p in per) + f" {slope:>11.0f} {runs[-1]['s']:>9.2f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
