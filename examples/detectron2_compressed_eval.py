"""Evaluate a detectron2 model on compressed images with detectron2's own evaluator.

A vcm codec (and optional mask) sits in detectron2's data path; ``inference_on_dataset`` and
``COCOEvaluator`` run unchanged and the bits of every image are collected beside the AP:

    PYTHONPATH=/path/to/detectron2 VCM_ASSETS=../shared/assets \\
        python examples/detectron2_compressed_eval.py --checkpoint model_final_f10217.pkl

Without ``--checkpoint`` the model has random weights (AP ~0; a smoke test of the wiring).
"""

import argparse
import os
from pathlib import Path

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.evaluation import COCOEvaluator
from detectron2.modeling import build_model

from vcm.codecs import CODECS
from vcm.integrations.detectron2 import build_config, evaluate_compressed, register_coco
from vcm.masks import MASKS

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--config", default="COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
parser.add_argument("--checkpoint", default=None, help="weights file (.pkl / .pth); omit for random weights")
parser.add_argument("--images", type=int, default=4, help="first N coco-mini val2017 images")
parser.add_argument("--quality", type=int, nargs="+", default=[10, 50])
parser.add_argument("--mask", choices=["none", "gt"], default="none", help="mask-before-encode")
args = parser.parse_args()

coco = Path(os.environ["VCM_ASSETS"]) / "data" / "coco-mini"
dataset = register_coco(f"coco_mini_val_{args.images}", str(coco / "annotations" / "instances_val2017.json"),
                        str(coco / "val2017"), limit=args.images)
cfg = build_config(args.config, checkpoint=args.checkpoint)
model = build_model(cfg).eval()
DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)  # "" = keep the random weights

mask = MASKS.build("gt", {"dilate": 8}) if args.mask == "gt" else None
mode = "masked" if mask is not None else "full"
for q in args.quality:
    codec = CODECS.build("jpeg", {"mode": mode, "quality": q})
    results, per_image = evaluate_compressed(model, cfg, dataset, codec, mask=mask,
                                             evaluator=COCOEvaluator(dataset, output_dir=None))
    rate = results["rate"]
    ap = {k: round(v["AP"], 2) for k, v in results.items() if k in ("bbox", "segm")}
    print(f"JPEG q{q} ({mode}): {rate['bpp']:.3f} bpp, PSNR {rate['psnr']:.2f} dB, AP {ap} "
          f"over {rate['images']} images")
