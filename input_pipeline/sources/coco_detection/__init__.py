"""COCO 2017 object detection (instances), read from a locally extracted copy.

Import `input_pipeline.sources.coco_detection.builder` to register the TFDS builder.
"""
