"""Open Images image-level labels (human-verified and machine), read from a local copy.

Import `input_pipeline.sources.open_images.builder` to register the TFDS builder
`open_images_labels`; `input_pipeline.sources.open_images.files` reads the CSV and
JSON files without TensorFlow.
"""
