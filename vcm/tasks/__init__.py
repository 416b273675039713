"""Task heads: decoded image -> :class:`vcm.types.Prediction` (instances, keypoints, class map)."""

from vcm.tasks.base import TASKS, TaskHead

TASKS.register_lazy("yolov8_seg", "vcm.tasks.yolo:YoloSeg", extra="tflite")
TASKS.register_lazy("yolo11_pose", "vcm.tasks.yolo:YoloPose", extra="tflite")
TASKS.register_lazy("deeplabv3", "vcm.tasks.deeplab:DeepLabV3", extra="tflite")

__all__ = ["TASKS", "TaskHead"]
