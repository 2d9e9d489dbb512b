"""G-RMI's pose network (Papandreou et al. 2017): a ResNet body on a person crop
and a 1x1 convolution predicting, per keypoint, a heatmap logit and a 2-D offset.

The body is `resnet.ResNet` itself (subclassed, `num_classes=0`), so every body
variable has the classification model's path (`conv1`, `conv2_block1/...`) and
`init_from` loads a pre-trained body as it is; only `keypoint_outputs` is new.
G-RMI runs the body atrous at output stride 8 and bilinearly upsamples the 3K
output channels to the crop's resolution (`upsample=True`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from big_vision_like.models.resnet import ResNet


class PoseResNet(ResNet):
    """Returns ({'heatmaps' [B, H, W, K] logits, 'offsets' [B, H, W, K, 2] (dy, dx) in
    units of the disk radius}, named body outputs)."""

    num_classes: int = 0
    output_stride: int = 8
    num_keypoints: int = 17
    upsample: bool = True
    # Heatmap logits start at this bias: a disk covers a small part of the crop.
    heatmap_bias_init: float = -2.0

    @nn.compact
    def __call__(self, images, train: bool = False):
        if self.num_classes:
            raise ValueError("pose_resnet: num_classes must be 0 (the pose head replaces "
                             "the classification head); remove model.num_classes.")
        _, out = super().__call__(images, train)
        k = self.num_keypoints
        bias = jnp.concatenate([jnp.full((k,), self.heatmap_bias_init), jnp.zeros((2 * k,))])
        y = nn.Conv(3 * k, (1, 1), dtype=self.dtype, name="keypoint_outputs",
                    kernel_init=nn.initializers.normal(0.01),
                    bias_init=lambda *_: bias)(out["conv5"]).astype(jnp.float32)
        if self.upsample:
            b, _, _, c = y.shape
            y = jax.image.resize(y, (b, images.shape[1], images.shape[2], c), "bilinear")
        heatmaps = y[..., :k]
        offsets = y[..., k:].reshape(*y.shape[:-1], k, 2)
        return {"heatmaps": heatmaps, "offsets": offsets}, out
