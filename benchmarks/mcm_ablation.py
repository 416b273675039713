"""MCM's sampling ablation (its Table 2): random vs texture-only vs structure-only vs DA-Mask.

    VCM_ASSETS=../shared/assets python benchmarks/mcm_ablation.py            # coco-mini val2017
    VCM_ASSETS=../shared/assets python benchmarks/mcm_ablation.py --images 10 --ratio 0.4375

The same MCM weights code the same images with the same visible ratio; only the choice of the
visible patches changes: uniformly random, proportional to the Laplacian texture score t_i,
to the structure score s_i (the image's objects: ground truth as in the paper, or YOLOv8n-seg
on the original image with ``--structure yolo_seg``), or to t_i * s_i (DA-Mask). Prints, per
sampling: mean bpp (all bytes, and the position record's share), PSNR and MS-SSIM of the whole
image, and YOLOv8n-seg segm / bbox AP (COCOeval over the images) on the decoded images.
The paper reports LPIPS, which needs pretrained weights not available here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vcm.config import parse_experiment
from vcm.pipeline.runner import prepare, run
from vcm.pipeline.store import ResultStore
from vcm.report.aggregate import aggregate

REPO = Path(__file__).resolve().parents[1]
SAMPLINGS = {
    "random": {"type": "random"},
    "texture": {"type": "damask", "terms": "texture"},
    "structure": {"type": "damask", "terms": "structure"},
    "da-mask": {"type": "damask", "terms": "both"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=None, help="first N val2017 images (default: all 79)")
    ap.add_argument("--ratio", type=float, default=0.25, help="visible fraction of 16-px patches")
    ap.add_argument("--checkpoint", default=str(REPO / "vcm/weights/mcm-tiny/q2.pth"))
    ap.add_argument("--positions", default="huffman", choices=["huffman", "grid"])
    ap.add_argument("--structure", default="gt", choices=["gt", "yolo_seg"])
    ap.add_argument("--output", default="runs/mcm_ablation")
    args = ap.parse_args()
    cfg = parse_experiment({
        "name": "mcm_ablation",
        "pipeline": str(REPO / "pipelines" / "structured_mask_codec_task.yaml"),
        "dataset": {"type": "coco", "root": "${VCM_ASSETS}/data/coco-mini", "split": "val2017", "limit": args.images},
        "grid": {
            "structure": [{"type": args.structure}],
            "mask": [{**spec, "visible_ratio": args.ratio, "label": name} for name, spec in SAMPLINGS.items()],
            "codec": [{"type": "mcm", "checkpoint": args.checkpoint, "positions": args.positions, "label": "mcm"}],
            "task": [{"type": "yolov8_seg", "label": "yolov8n-seg"}],
        },
        "eval": {"msssim": True},
        "output_dir": f"{args.output}/{args.structure}-{args.ratio}-{args.positions}-{Path(args.checkpoint).stem}",
    })
    exp = prepare(cfg)
    run(exp)
    store = ResultStore(exp.run_dir / "results.sqlite")
    try:
        rows = {r.series.split("/")[0]: r for r in aggregate(exp, store)}
    finally:
        store.close()
    ref = rows.pop("reference").values
    print(f"MCM {Path(args.checkpoint).name}, {args.ratio:.0%} of the patches visible, structure = {args.structure}, "
          f"positions = {args.positions}, {len(exp.dataset.ids())} coco-mini val2017 images")
    print(f"uncompressed: segm AP {ref.get('segm_AP', 0):.3f}, bbox AP {ref.get('bbox_AP', 0):.3f}")
    print(f"{'sampling':<10} {'bpp':>7} {'pos %':>6} {'PSNR':>6} {'MS-SSIM':>8} {'segm AP':>8} {'bbox AP':>8}")
    for name in SAMPLINGS:
        v = rows[name].values
        share = 100 * (v["bpp_side"] or 0) / v["bpp"]
        print(f"{name:<10} {v['bpp']:7.4f} {share:6.1f} {v['psnr']:6.2f} {v['msssim'] or float('nan'):8.4f} "
              f"{v['segm_AP']:8.3f} {v['bbox_AP']:8.3f}")


if __name__ == "__main__":
    main()
