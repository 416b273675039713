"""SegPIC's central ablation: masks as privileged information vs grid-only prototypes vs BL.

    VCM_ASSETS=../shared/assets python benchmarks/segpic_ablation.py --train   # trains what is missing
    VCM_ASSETS=../shared/assets python benchmarks/segpic_ablation.py --images 8

Three networks from the same config (``configs/train/segpic_tiny.yaml``: same data, crops,
lambdas, steps, optimiser and seed), differing in one thing each:

    masks : prototypes pooled per segment of the crops' ground-truth instances (the committed weights)
    grid  : ``codec.prototypes=grid``, the inference-time 4x4 grid prototypes also in training
    BL    : ``codec.rat=false``, no RAT and no SAL (plain 5x5 convs + GDN)

All three code Kodak with no mask (grid prototypes at inference). Prints each rate point's bpp
(all bytes) and PSNR, then BD-rate (PSNR vs bpp, Akima) of each network against BL and against
grid: "masks vs grid" is what the masks add, "grid vs BL" what RAT + SAL add without them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "train" / "segpic_tiny.yaml"
VARIANTS = {  # name: (vcm train overrides, output folder)
    "masks": ([], REPO / "vcm" / "weights" / "segpic-tiny"),
    "grid": (["codec.prototypes=grid"], REPO / "runs" / "segpic-ablation" / "grid"),
    "BL": (["codec.rat=false"], REPO / "runs" / "segpic-ablation" / "bl"),
}
POINTS = ("q1", "q2", "q3", "q4")


def train_missing(names: list[str]) -> None:
    """``vcm train`` each variant whose four rate points are not all there (resumes a stopped run)."""
    from vcm.train.config import load_train_config
    from vcm.train.loop import train

    for name in names:
        overrides, out = VARIANTS[name]
        if not all((out / f"{p}.pth").is_file() for p in POINTS):
            print(f"training {name}: vcm train {CONFIG.relative_to(REPO)} {' '.join(overrides)} output_dir={out}")
            train(load_train_config(str(CONFIG), [*overrides, f"output_dir={out}"]))


def evaluate(names: list[str], images: int | None, output: str) -> dict[str, list[tuple[float, float]]]:
    """(bpp, PSNR) per rate point of each variant, Kodak means, through the vcm pipeline."""
    from vcm.config import parse_experiment
    from vcm.pipeline.runner import prepare, run
    from vcm.pipeline.store import ResultStore
    from vcm.report.aggregate import aggregate

    codecs = [{"type": "segpic", "label": name,
               "sweep": {"checkpoint": [str(VARIANTS[name][1] / f"{p}.pth") for p in POINTS]}} for name in names]
    exp = prepare(parse_experiment({
        "name": "segpic_ablation", "pipeline": str(REPO / "pipelines" / "codec.yaml"),
        "dataset": {"type": "folder", "root": "${VCM_ASSETS}/data/kodak", "limit": images},
        "grid": {"codec": codecs}, "output_dir": output}))
    run(exp, progress=sys.stderr.isatty())
    store = ResultStore(exp.run_dir / "results.sqlite")
    try:
        rows = [r for r in aggregate(exp, store) if r.series != "reference"]
    finally:
        store.close()
    curves: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in rows:
        curves[r.series.split("/")[-1]].append((float(r.values["bpp"] or 0), float(r.values["psnr"] or 0)))
    return curves


def bd(anchor: list[tuple[float, float]], test: list[tuple[float, float]]) -> str:
    """'BD-rate % / BD-PSNR dB [flags]' of ``test`` against ``anchor`` (pchip)."""
    from vcm.report.bdrate import Curve, bd_metric, bd_rate

    if anchor == test:
        return "-"
    a, t = Curve(*map(tuple, zip(*anchor))), Curve(*map(tuple, zip(*test)))
    rate, gap = bd_rate(a, t), bd_metric(a, t)
    flags = dict.fromkeys(rate.flags + gap.flags)
    text = ("n/a" if rate.value is None else f"{rate.value:+.1f} %") + " / " + \
        ("n/a" if gap.value is None else f"{gap.value:+.2f} dB")
    return text + (f" [{','.join(flags)}]" if flags else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=None, help="first N Kodak images (default: all 24)")
    ap.add_argument("--train", action="store_true", help="train the variants whose weights are missing")
    ap.add_argument("--output", default="runs/segpic_ablation")
    args = ap.parse_args()
    names = list(VARIANTS)
    if args.train:
        train_missing(names)
    missing = [n for n in names if not all((VARIANTS[n][1] / f"{p}.pth").is_file() for p in POINTS)]
    if missing:
        print(f"no weights for {', '.join(missing)}: run with --train (about 30 min each on 2 cores)", file=sys.stderr)
        return 2
    curves = evaluate(names, args.images, args.output)
    print(f"SegPIC ablation, Kodak ({args.images or 24} images), same config / lambdas / steps; bpp counts all bytes")
    print(f"{'variant':<7} " + "  ".join(f"{p:>13}" for p in POINTS) + "  vs BL: BD-rate / BD-PSNR; vs grid: the same")
    for name in names:
        pts = "  ".join(f"{b:.3f}/{q:5.2f}dB" for b, q in sorted(curves[name]))
        print(f"{name:<7} {pts}  vs BL: {bd(curves['BL'], curves[name])};  vs grid: {bd(curves['grid'], curves[name])}")
    from vcm.report.bdrate import FLAG_TEXT

    print("BD-rate (pchip): % bits for equal PSNR (negative = fewer); BD-PSNR: dB at equal rate. Flags: "
          + "; ".join(f"{k}: {v}" for k, v in FLAG_TEXT.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
