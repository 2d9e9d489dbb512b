"""The data layer's own error, TensorFlow-free so any module may raise or catch it."""


class InputPipelineError(RuntimeError):
    """The input pipeline stopped; the message says why and what to change."""
