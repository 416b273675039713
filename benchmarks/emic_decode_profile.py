"""Where one EMIC decode spends its time (cProfile), and decode time against another checkout.

    python benchmarks/emic_decode_profile.py                          # profile this tree
    python benchmarks/emic_decode_profile.py --baseline /tmp/vcm-head # ... and time both, interleaved

The decode is ``EmicCodec.decode`` of a committed tiny model (``vcm/weights/emic-tiny``) on a
Kodak image under a DA-Mask (50 % visible by default), on one CPU thread. Each variant runs in
its own process (``--baseline`` is the root of another checkout, e.g. ``git archive HEAD vcm |
tar -x -C DIR``; it decodes its own bytes, made with the same weights, image and mask):
variants alternate A B A B ..., each process times ``--repeats`` decodes after a warm-up one.
Shares are cumulative seconds over the decode's: ``build_indexes`` (compressai's loop or vcm's
vectorised one) and the position bias (EMIC attention's ``pair_bias``, the window tiling
``window_tiles`` / ``_needs_window`` and the cache key ``gamma_key``; the old code tiled inline,
so its tiling is not in its share). About 1 minute with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIAS = ("pair_bias", "window_tiles", "_needs_window", "gamma_key")


def _shares(stats: Any, total: float) -> dict[str, float]:
    """Cumulative seconds of build_indexes and of the position-bias functions, as shares of ``total``."""
    out = {"build_indexes": 0.0, "position_bias": 0.0}
    for (path, _, name), (_, _, _, cum, _) in stats.stats.items():
        if name == "build_indexes":
            out["build_indexes"] += cum / total
        elif name in BIAS and path.endswith(os.path.join("emic", "attention.py")):
            out["position_bias"] += cum / total
    return out


def worker(args: argparse.Namespace) -> None:
    """In a process importing vcm from ``args.root``: profile one decode, time ``repeats``; JSON out."""
    sys.path.insert(0, str(args.root))
    import cProfile
    import io
    import pstats

    import torch

    from vcm.codecs.emic.codec import emic
    from vcm.io import load_image
    from vcm.masks.damask import DAMask

    torch.set_num_threads(1)
    image = load_image(Path(args.assets) / "data" / "kodak" / f"{args.image}.png")
    mask = DAMask(visible_ratio=args.visible)(image=image, sample_id=f"{args.image}.png")
    if str(args.checkpoint) == "paper":  # paper-size widths and depths, random init (cost only)
        from vcm.codecs.emic.codec import EmicCodec
        from vcm.codecs.emic.model import EmicConfig, EmicModel

        torch.manual_seed(0)
        model = EmicModel(EmicConfig())
        model.update(force=True)
        codec = EmicCodec(model.eval(), torch.device("cpu"))
    else:
        codec = emic(checkpoint=str(args.checkpoint))
    data = codec.encode(image=image, mask=mask).data
    codec.decode(data)  # warm-up
    prof = cProfile.Profile()
    prof.enable()
    codec.decode(data)
    prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    total = max(cum for (_, _, name), (_, _, _, cum, _) in stats.stats.items() if name == "decode")
    stats.sort_stats("cumulative").print_stats(args.top)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        codec.decode(data)
        times.append(time.perf_counter() - t)
    print(json.dumps({"times": times, "profiled_s": total, "shares": _shares(stats, total), "bytes": len(data),
                      "vcm": str(sys.modules["vcm"].__file__), "profile": text.getvalue()}))


def run_variant(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--_worker", "--root", str(root), "--checkpoint", str(args.checkpoint),
           "--image", args.image, "--visible", str(args.visible), "--repeats", str(args.repeats),
           "--top", str(args.top), "--assets", args.assets]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _summary(name: str, runs: list[dict[str, Any]]) -> str:
    times = [t for r in runs for t in r["times"]]
    sh = runs[0]["shares"]
    return (f"| {name} | {min(times):.3f} | {statistics.median(times):.3f} | {len(times)} | "
            f"{100 * sh['build_indexes']:.1f} % | {100 * sh['position_bias']:.1f} % | {runs[0]['bytes']} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=ROOT / "vcm" / "weights" / "emic-tiny" / "q3.pth",
                   help="an EMIC checkpoint, or 'paper': the paper-size model, random init")
    p.add_argument("--image", default="kodim23", help="Kodak image name")
    p.add_argument("--visible", type=float, default=0.5, help="DA-Mask visible ratio")
    p.add_argument("--baseline", type=Path, help="root of another checkout to time against (variant A)")
    p.add_argument("--rounds", type=int, default=4, help="processes per variant, interleaved")
    p.add_argument("--repeats", type=int, default=3, help="timed decodes per process")
    p.add_argument("--top", type=int, default=25, help="profile rows shown")
    p.add_argument("--assets", default=os.environ.get("VCM_ASSETS", str(ROOT.parent / "shared" / "assets")))
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    p.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._worker:
        return worker(args)
    variants = {"before (baseline)": args.baseline, "after (this tree)": ROOT} if args.baseline else {"this tree": ROOT}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    for r in range(args.rounds if args.baseline else 1):
        for name, root in variants.items():
            runs[name].append(run_variant(root, args))
            print(f"round {r + 1} {name}: {' '.join(f'{t:.3f}' for t in runs[name][-1]['times'])} s", flush=True)
    for name, rs in runs.items():
        print(f"\n## {name}: {rs[0]['vcm']}\ncProfile of one decode ({rs[0]['profiled_s']:.3f} s under the profiler), "
              f"top {args.top} by cumulative time\n{rs[0]['profile']}")
    print(f"EMIC decode: {args.checkpoint.name}, {args.image}, DA-Mask {args.visible:.0%}, 1 thread")
    print("| variant | min s | median s | decodes | build_indexes | position bias | bytes |\n|---|---|---|---|---|---|---|")
    for name, rs in runs.items():
        print(_summary(name, rs))
    if args.baseline:
        before, after = runs.values()
        ratios = [statistics.median(a["times"]) / statistics.median(b["times"]) for a, b in zip(after, before)]
        print(f"after / before within each round (median of its decodes): {' '.join(f'{r:.3f}' for r in ratios)}; "
              f"min {min(ratios):.3f}, median {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
