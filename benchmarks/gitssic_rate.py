"""GIT-SSIC bytes against its entropy estimate as a Kodak image is split into more groups.

    python benchmarks/gitssic_rate.py                          # kodim01, q1..q4, 1 / 20 / 200 groups
    python benchmarks/gitssic_rate.py --image kodim08 --rates q4 --groups 1 50 200

Each group is one rANS string (its z, then its y slices), so the payload is the estimate
(-log2 of the eval forward's likelihoods of y and every group's z) plus a fixed cost per string:
compressai's coder starts from a 31-bit state and flushes 64 bits in whole 4-byte words, of
which the stored string drops the state's zero high bytes (~4.4 bytes a group in all). Groups
are the nearest-seed partition of the whole frame on the 16-px latent grid
(:func:`vcm.codecs.gitssic.groups.partition_mask`), all transmitted. Header bytes hold one
section length per group; side bytes the group map. About 30 s on one core.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

WEIGHTS = Path(__file__).resolve().parents[1] / "vcm" / "weights" / "gitssic-tiny"


def table(image: str, rate: str, groups: list[int]) -> None:
    """Print one rate point's rows: groups | estimate bytes | payload bytes | ratio | header + side."""
    from vcm.assets import expand_path
    from vcm.codecs.gitssic.codec import GitSsicCodec, estimated_bytes, load_gitssic
    from vcm.codecs.gitssic.groups import partition_mask
    from vcm.io import load_image

    img = load_image(Path(expand_path("${VCM_ASSETS}/data/kodak")) / f"{image}.png")
    model = load_gitssic(WEIGHTS / f"{rate}.pth")
    codec = GitSsicCodec(model)
    print(f"\n{image} ({img.shape[1]}x{img.shape[0]}), gitssic-tiny {rate}\n")
    print("| groups | estimate bytes | payload bytes | ratio | header + side bytes |")
    print("|---|---|---|---|---|")
    for n in groups:
        mask = partition_mask(*img.shape[:2], n)
        est, bs = estimated_bytes(model, img, mask), codec.encode(image=img, mask=mask)
        print(f"| {n} | {est:.0f} | {bs.payload_bytes} | {bs.payload_bytes / est:.4f} | "
              f"{bs.header_bytes} + {bs.side_bytes} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", default="kodim01", help="Kodak image name under $VCM_ASSETS/data/kodak")
    p.add_argument("--rates", nargs="+", default=["q1", "q2", "q3", "q4"])
    p.add_argument("--groups", nargs="+", type=int, default=[1, 20, 200])
    args = p.parse_args()
    torch.set_num_threads(1)
    t = time.perf_counter()
    for rate in args.rates:
        table(args.image, rate, args.groups)
    print(f"\n{time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
