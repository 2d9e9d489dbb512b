"""Command-line tools built on the training loop (`python -m big_vision_like.tools.<name>`)."""
