"""PASCAL VOC 2007 + 2012 object detection (the paper's 07+12 trainval), read from
locally extracted copies.

Import `input_pipeline.sources.voc0712.builder` to register the TFDS builder.
"""
