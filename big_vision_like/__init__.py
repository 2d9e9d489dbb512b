"""big_vision_like: pre-training ResNets on JFT-shaped data with JAX, and measuring transfer."""
