"""Real handwritten digits (scikit-learn's bundled `load_digits`) as a TFDS dataset.

Import `input_pipeline.sources.sklearn_digits.builder` to register the builder.
"""
