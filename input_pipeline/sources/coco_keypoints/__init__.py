"""COCO 2017 person keypoints, read from a locally extracted copy.

Import `input_pipeline.sources.coco_keypoints.builder` to register the TFDS builder.
"""
