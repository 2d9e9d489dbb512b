"""The offline, JFT-shaped dataset `synthetic_jft`.

Import `input_pipeline.sources.synthetic_jft.builder` to register the TFDS builder; the
rendering modules stay free of TensorFlow for the worker processes. `pp_ops` holds
the preprocessing ops only this dataset has; its source (`sources.registry`) adds
them to a run's op registry.
"""
