"""yolov4: darknet's YOLOv4 on minilucid, with lucid's ``YOLO_V4`` API."""

from yolov4.model import YOLO_V4, yolo_v4, yolo_v4_tiny
from yolov4.model_config import YOLO_V4Config, tiny_config

__all__ = ["YOLO_V4", "YOLO_V4Config", "tiny_config", "yolo_v4", "yolo_v4_tiny"]
