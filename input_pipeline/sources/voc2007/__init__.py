"""PASCAL VOC 2007 object detection, read from a locally extracted copy.

Import `input_pipeline.sources.voc2007.builder` to register the TFDS builder.
"""
