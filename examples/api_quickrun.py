"""Run a small experiment from Python and print its BD-rate table.

    VCM_ASSETS=../shared/assets python examples/api_quickrun.py
"""

from pathlib import Path

from vcm.config import parse_experiment
from vcm.pipeline.runner import prepare, run
from vcm.report.build import make_report

REPO = Path(__file__).resolve().parents[1]

config = parse_experiment({
    "name": "api-demo",
    "pipeline": str(REPO / "pipelines" / "mask_codec_task.yaml"),
    "dataset": {"type": "coco", "root": "${VCM_ASSETS}/data/coco-mini", "limit": 8},
    "grid": {
        "mask": [{"type": "gt", "dilate": 8}],
        "codec": [
            {"type": "webp", "mode": "full", "sweep": {"quality": [10, 30, 60, 90]}},
            {"type": "webp", "mode": "masked", "fill": "blur", "sweep": {"quality": [10, 30, 60, 90]}},
        ],
        "task": [{"type": "yolov8_seg", "label": "seg"}, {"type": "yolo11_pose", "label": "pose"}],
    },
    "output_dir": "runs/api-demo",
    "report": {"anchor": "webp-full"},
})

experiment = prepare(config)  # builds and checks the graph; no image is touched yet
summary = run(experiment)
files = make_report(summary.run_dir)
print(files["md"].read_text().split("## Rate points")[0])
print("HTML report:", files["html"])
