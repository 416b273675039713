"""Task heads: decoded image -> :class:`vcm.types.Prediction` (instances, keypoints, class map)."""

from vcm.tasks.base import TASKS, TaskHead

TASKS.register_lazy("yolov8_seg", "vcm.tasks.yolo:YoloSeg", extra="tflite")
TASKS.register_lazy("yolo11_pose", "vcm.tasks.yolo:YoloPose", extra="tflite")
TASKS.register_lazy("deeplabv3", "vcm.tasks.semantic:DeepLabV3", extra="tflite")
TASKS.register_lazy("semantic", "vcm.tasks.semantic:SemanticHead")
# detectron2 is built from source (no pip extra); its import error carries the hint.
TASKS.register_lazy("detectron2", "vcm.tasks.detectron2:Detectron2Instances")
TASKS.register_lazy("detectron2_keypoints", "vcm.tasks.detectron2:Detectron2Keypoints")
TASKS.register_lazy("mmpose_topdown", "vcm.tasks.mmpose:MMPoseTopDown", extra="mmpose")

__all__ = ["TASKS", "TaskHead"]
