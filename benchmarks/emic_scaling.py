"""EMIC cost vs visible fraction: FLOPs and wall time as ratios to the full frame, and peak memory.

    python benchmarks/emic_scaling.py                      # paper-size model, random init (~8 min, 1 core)
    python benchmarks/emic_scaling.py --peak-size 2048     # ... and peak memory of a 2048x2048 image
    python benchmarks/emic_scaling.py --checkpoint vcm/weights/emic-tiny/q3.pth

Masks keep a random fraction f of the 16-px mask units of a Kodak image (768x512). Encoder cost is
``codec.encode`` (transform, hyperprior, rANS, side info), decoder cost is ``codec.decode``.
FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions). Times
come from ``--rounds`` interleaved rounds (every fraction's encode and decode once per round,
the order reversed every other round), and each time ratio is taken within one round, so load
drift on a shared machine cannot bias the small fractions (which an in-order loop did).
Targets (issue 3): FLOPs ratio <= f + 0.02, median time ratio <= f + 0.10, and peak memory
<= 4 GB for a full 2048x2048 image (measured in a fresh process: peak RSS on CPU,
``torch.cuda.max_memory_allocated`` on CUDA).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rounds import interleaved, min_median, ratios

FRACTIONS = (0.10, 0.25, 0.50, 0.75, 1.00)


def build_codec(checkpoint: str | None, device: torch.device) -> Any:
    from vcm.codecs.emic.codec import EmicCodec, load_emic
    from vcm.codecs.emic.model import EmicConfig, EmicModel

    if checkpoint:
        return EmicCodec(load_emic(checkpoint), device)
    torch.manual_seed(0)
    model = EmicModel(EmicConfig())  # paper-size: dims 128..320, depths 2/2/6/2
    model.update(force=True)
    return EmicCodec(model.eval(), device)


def flops(fn: Callable[[], Any]) -> float:
    """GFLOPs of one call (matmuls and convolutions; deterministic, so counted once)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def timed(fn: Callable[[], Any], device: torch.device) -> Callable[[], float]:
    """``fn`` as a variant for :func:`rounds.interleaved` (seconds, CUDA synchronised)."""
    def run() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t
    return run


def scaling(codec: Any, image: np.ndarray, rounds: int, device: torch.device) -> dict[float, dict[str, Any]]:
    """Per fraction: FLOPs and, from interleaved rounds, encode / decode time as ratios to the
    full frame taken within each round."""
    from vcm.masks import MASKS

    masks = {f: MASKS.build("random", {"visible_ratio": f, "seed": 0})(image=image, sample_id="kodim") for f in FRACTIONS}
    bits = {f: codec.encode(image=image, mask=m).data for f, m in masks.items()}
    variants: dict[str, Callable[[], float]] = {}
    for f in FRACTIONS:
        variants[f"enc{f}"] = timed(lambda m=masks[f]: codec.encode(image=image, mask=m), device)
        variants[f"dec{f}"] = timed(lambda b=bits[f]: codec.decode(b), device)
    times = interleaved(variants, rounds)
    rows = {}
    for f in FRACTIONS:
        rows[f] = {"visible": float(masks[f].grid.mean()),
                   "enc_gflops": flops(lambda m=masks[f]: codec.encode(image=image, mask=m)),
                   "dec_gflops": flops(lambda b=bits[f]: codec.decode(b)),
                   "enc_ratio": ratios(times, f"enc{f}", "enc1.0"), "dec_ratio": ratios(times, f"dec{f}", "dec1.0"),
                   "enc_s": [r[f"enc{f}"] for r in times], "dec_s": [r[f"dec{f}"] for r in times],
                   "bpp": 8 * len(bits[f]) / image.shape[0] / image.shape[1]}
    return rows


def peak_memory(checkpoint: str | None, device: torch.device, size: int) -> float:
    """Peak memory (GB) of encoding + decoding a full ``size`` x ``size`` image, in a fresh process."""
    args = [sys.executable, __file__, "--_peak", str(size), "--device", str(device)]
    if checkpoint:
        args += ["--checkpoint", checkpoint]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_gb"])


def _peak_child(checkpoint: str | None, device: torch.device, size: int) -> None:
    import resource

    from vcm.types import Mask

    codec = build_codec(checkpoint, device)
    image = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    codec.decode(codec.encode(image=image, mask=Mask.full(size, size)).data)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GB (Linux)
    print(json.dumps({"peak_gb": peak}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="EMIC checkpoint (default: paper-size model, random init)")
    p.add_argument("--device", default="auto")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--image", default="${VCM_ASSETS}/data/kodak/kodim01.png")
    p.add_argument("--peak-size", type=int, default=0,
                   help="also measure peak memory at this size, e.g. 2048 (paper-size: ~10 min on one core)")
    p.add_argument("--_peak", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    from vcm.device import resolve_device

    device = resolve_device(args.device)
    if args._peak:
        return _peak_child(args.checkpoint, device, args._peak)
    from vcm.assets import expand_path
    from vcm.io import load_image

    image = load_image(expand_path(args.image))
    codec = build_codec(args.checkpoint, device)
    cfg = codec.model.cfg
    print(f"EMIC scaling on {Path(expand_path(args.image)).name} {image.shape[1]}x{image.shape[0]}, "
          f"{args.checkpoint or 'paper-size random init'} (dims {cfg.dims}, depths {cfg.depths}, "
          f"cross-MU window {cfg.mu_window or 'global'}, hyper_pool {cfg.hyper_pool}), {device}, "
          f"threads {torch.get_num_threads()}")
    rows = scaling(codec, image, args.rounds, device)
    full = rows[1.0]
    ok_all = True
    print(f"\n{args.rounds} interleaved rounds (fractions up, then down, ...); time ratios to the full frame are "
          f"taken within a round: min / median; targets checked on the median\n")
    print("| f | visible | enc FLOPs | dec FLOPs | enc time | dec time | enc / dec s (median) | "
          "FLOPs <= f+0.02 | time <= f+0.10 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f, r in rows.items():
        fl = (r["enc_gflops"] / full["enc_gflops"], r["dec_gflops"] / full["dec_gflops"])
        tm = (statistics.median(r["enc_ratio"]), statistics.median(r["dec_ratio"]))
        ok_f, ok_t = max(fl) <= f + 0.02, max(tm) <= f + 0.10
        ok_all &= ok_f and ok_t
        print(f"| {f:.2f} | {r['visible']:.3f} | {fl[0]:.3f} | {fl[1]:.3f} | {min_median(r['enc_ratio'])} | "
              f"{min_median(r['dec_ratio'])} | {statistics.median(r['enc_s']):.2f} / {statistics.median(r['dec_s']):.2f} | "
              f"{'yes' if ok_f else 'NO'} | {'yes' if ok_t else 'NO'} |")
    ok_m = True
    if args.peak_size:
        peak = peak_memory(args.checkpoint, device, args.peak_size)
        ok_m = peak <= 4.0
        print(f"\npeak memory, full {args.peak_size}x{args.peak_size} encode+decode: {peak:.2f} GB "
              f"(target <= 4 GB: {'yes' if ok_m else 'NO'})")
    print(f"all targets {'measured ' if not args.peak_size else ''}hold: {'yes' if ok_all and ok_m else 'NO'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
