"""EMIC vs GIT-SSIC on the same images and masks: cost, rate and quality inside the mask.

    python benchmarks/emic_vs_gitssic.py                 # 4 Kodak images, q1..q4, paper-size cost
    python benchmarks/emic_vs_gitssic.py --images 24 --rounds 6

The seed paper's headline comparison (EMIC, section 3). Masks are DA-Mask at 10 / 25 / 50 %
visible, the same for both codecs. EMIC encodes only the kept units. GIT-SSIC encodes the whole
image with one group per connected part of the mask (background its own group) and transmits
the mask's groups only (``send: foreground``), the selective-transmission use of its structured
bitstream; its full-stream bpp (all groups) is printed too.

1. Rate and quality: the trained tiny models (identical widths, depths, slices, lambdas and
   schedule: configs/train/emic_tiny.yaml, gitssic_tiny.yaml), mean bpp (of the bytes sent,
   over the whole image area) and PSNR inside the mask, per rate point; BD-rate of EMIC against
   GIT-SSIC at equal PSNR inside the mask.
2. Cost: encoder and decoder FLOPs (``FlopCounterMode``: matmuls and convolutions) and wall time
   of the paper-size models (dims 128..320 for both; random init, as cost does not depend on the
   weights), as ratios EMIC / GIT-SSIC. Times come from ``--rounds`` interleaved rounds over all
   variants (order reversed every other round); every ratio is taken within one round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emic_scaling import flops, timed
from rounds import interleaved, min_median, ratios

FRACTIONS = (0.10, 0.25, 0.50)
RATES = ("q1", "q2", "q3", "q4")
WEIGHTS = Path(__file__).resolve().parents[1] / "vcm" / "weights"


def codecs(rate: str | None, device: torch.device) -> tuple[Any, Any]:
    """(EMIC, GIT-SSIC sending the mask's groups): trained tiny ``rate`` or paper-size random init."""
    from vcm.codecs.emic.codec import EmicCodec, load_emic
    from vcm.codecs.emic.model import EmicConfig, EmicModel
    from vcm.codecs.gitssic.codec import GitSsicCodec, load_gitssic
    from vcm.codecs.gitssic.model import GitSsicConfig, GitSsicModel

    if rate:
        emic, git = load_emic(WEIGHTS / "emic-tiny" / f"{rate}.pth"), load_gitssic(WEIGHTS / "gitssic-tiny" / f"{rate}.pth")
    else:
        torch.manual_seed(0)
        emic, git = EmicModel(EmicConfig()), GitSsicModel(GitSsicConfig())
        emic.update(force=True)
        git.update(force=True)
    return EmicCodec(emic.eval(), device), GitSsicCodec(git.eval(), "components", "foreground", device)


def masks(images: list[tuple[str, np.ndarray]]) -> dict[float, list[Any]]:
    from vcm.masks import MASKS

    return {f: [MASKS.build("damask", {"visible_ratio": f})(image=img, sample_id=sid) for sid, img in images]
            for f in FRACTIONS}


def rate_quality(images: list[tuple[str, np.ndarray]], ms: dict[float, list[Any]], device: torch.device) -> None:
    from vcm.metrics.quality import psnr
    from vcm.report.bdrate import Curve, bd_rate

    print("\n## Rate and PSNR inside the mask (trained tiny models; mean over images)\n")
    print("| f | rate | EMIC bpp | EMIC PSNR-in | GIT-SSIC bpp sent | GIT-SSIC PSNR-in | GIT-SSIC bpp all groups |")
    print("|---|---|---|---|---|---|---|")
    curves: dict[float, dict[str, list[tuple[float, float]]]] = {f: {"emic": [], "git": []} for f in FRACTIONS}
    for rate in RATES:
        emic, git = codecs(rate, device)
        git_all = type(git)(git.model, "components", "all", device)
        for f in FRACTIONS:
            row: dict[str, list[float]] = {k: [] for k in ("eb", "ep", "gb", "gp", "ga")}
            for (sid, img), m in zip(images, ms[f]):
                area, keep = img.shape[0] * img.shape[1], m.coded_pixels()
                for key, codec in (("e", emic), ("g", git)):
                    data = codec.encode(image=img, mask=m).data
                    row[key + "b"].append(8 * len(data) / area)
                    row[key + "p"].append(psnr(img, codec.decode(data).image, keep) or 0.0)
                row["ga"].append(8 * len(git_all.encode(image=img, mask=m).data) / area)
            r = {k: float(np.mean(v)) for k, v in row.items()}
            curves[f]["emic"].append((r["eb"], r["ep"]))
            curves[f]["git"].append((r["gb"], r["gp"]))
            print(f"| {f:.2f} | {rate} | {r['eb']:.4f} | {r['ep']:.2f} | {r['gb']:.4f} | {r['gp']:.2f} | {r['ga']:.4f} |",
                  flush=True)
    print("\nBD-rate of EMIC vs GIT-SSIC (sent bits, equal PSNR inside the mask; negative = EMIC needs fewer bits):")
    for f, c in curves.items():
        res = bd_rate(Curve(*map(tuple, zip(*c["git"]))), Curve(*map(tuple, zip(*c["emic"]))))
        print(f"  f={f:.2f}: {res.value:+.1f} %" if res.value is not None else f"  f={f:.2f}: n/a ({res.note})")


def cost(images: list[tuple[str, np.ndarray]], ms: dict[float, list[Any]], rounds: int, device: torch.device) -> None:
    """FLOPs once, and times from interleaved rounds over every (codec, fraction, side) variant;
    each EMIC / GIT-SSIC time ratio is taken within one round."""
    emic, git = codecs(None, device)
    sid, img = images[0]
    variants, gflops = {}, {}
    for f in FRACTIONS:
        for key, codec in (("e", emic), ("g", git)):
            m = ms[f][0]
            data = codec.encode(image=img, mask=m).data
            enc, dec = (lambda c=codec, m=m: c.encode(image=img, mask=m)), (lambda c=codec, d=data: c.decode(d))
            variants[f"{key}enc{f}"], variants[f"{key}dec{f}"] = timed(enc, device), timed(dec, device)
            gflops[f"{key}enc{f}"], gflops[f"{key}dec{f}"] = flops(enc), flops(dec)
    times = interleaved(variants, rounds)
    print(f"\n## Cost, paper-size models, {sid} {img.shape[1]}x{img.shape[0]}, {device}, threads "
          f"{torch.get_num_threads()}: ratio EMIC / GIT-SSIC; times from {rounds} interleaved rounds, "
          f"ratios within a round, min / median\n")
    print("| f | enc FLOPs | dec FLOPs | enc time | dec time | EMIC enc / dec s | GIT-SSIC enc / dec s |")
    print("|---|---|---|---|---|---|---|")
    for f in FRACTIONS:
        fl = [gflops[f"e{k}{f}"] / gflops[f"g{k}{f}"] for k in ("enc", "dec")]
        tm = [ratios(times, f"e{k}{f}", f"g{k}{f}") for k in ("enc", "dec")]
        med = {k: statistics.median(r[k] for r in times) for k in times[0] if k.endswith(str(f))}
        print(f"| {f:.2f} | {fl[0]:.3f} | {fl[1]:.3f} | {min_median(tm[0])} | {min_median(tm[1])} | "
              f"{med[f'eenc{f}']:.2f} / {med[f'edec{f}']:.2f} | {med[f'genc{f}']:.2f} / {med[f'gdec{f}']:.2f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=4, help="first N Kodak images")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-cost", action="store_true")
    args = p.parse_args()
    from vcm.assets import expand_path
    from vcm.device import resolve_device
    from vcm.io import load_image

    device = resolve_device(args.device)
    files = sorted(Path(expand_path("${VCM_ASSETS}/data/kodak")).glob("*.png"))[: args.images]
    images = [(f.stem, load_image(f)) for f in files]
    ms = masks(images)
    print(f"EMIC vs GIT-SSIC: {len(images)} Kodak images, DA-Mask at {', '.join(f'{f:.0%}' for f in FRACTIONS)}; "
          f"measured visible: {', '.join(f'{statistics.mean(m.visible_fraction for m in ms[f]):.3f}' for f in FRACTIONS)}")
    rate_quality(images, ms, device)
    if not args.skip_cost:
        cost(images, ms, args.rounds, device)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
