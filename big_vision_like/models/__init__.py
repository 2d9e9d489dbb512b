"""Models: ResNet backbones with a class-sharded head."""
