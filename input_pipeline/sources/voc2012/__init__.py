"""PASCAL VOC 2012 semantic segmentation, read from a locally extracted copy.

Import `input_pipeline.sources.voc2012.builder` to register the TFDS builder.
"""
