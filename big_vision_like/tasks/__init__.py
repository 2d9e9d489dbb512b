"""Tasks, looked up by name (`config.task`) in an explicit registry.

A task is a class with `from_config(config, context) -> Task` (see
`tasks.base`). Nothing registers itself at import.
"""

from __future__ import annotations

from big_vision_like.registry import Registry


def default_registry() -> Registry:
    from big_vision_like.tasks.classification import ClassificationTask
    from big_vision_like.tasks.detection import DetectionTask
    from big_vision_like.tasks.pose import PoseTask
    from big_vision_like.tasks.segmentation import SegmentationTask

    reg: Registry = Registry("task")
    reg.register("classification", ClassificationTask)
    reg.register("detection", DetectionTask)
    reg.register("pose", PoseTask)
    reg.register("segmentation", SegmentationTask)
    return reg
