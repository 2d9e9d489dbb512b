"""DeepLab-ASPP-L (Chen et al. 2016, "DeepLab v2") on the ResNet body.

The body is `resnet.ResNet` with `num_classes=0` and `output_stride` 8 or 16
(its last stages atrous). After conv5, four parallel 3x3 atrous convolutions
with rates (6, 12, 18, 24) at output stride 8 (halved at 16, so the field of
view stays the same in pixels) each give per-pixel class scores; the scores
are summed and bilinearly upsampled to the input size.

The body shares this module's scope, so its variables have exactly the
paths of the classification ResNet (`conv1`, `conv2_block1/...`): a
classification checkpoint loads with `init_from` (skip '^(head|aspp)/'), and
`frozen='^(conv1|conv[2-4])'` freezes the same stages. The ASPP branches live
under `aspp/rate<r>` and start from Xavier (Glorot) initialisation.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from big_vision_like.models.resnet import ResNet

# DeepLab-ASPP-L's rates, in units of conv5 pixels at output stride 8.
ASPP_L_RATES = (6, 12, 18, 24)


def upsample_align_corners(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Bilinear resize of [B, h, w, C] to [B, H, W, C] with corner pixels aligned
    (TF's `align_corners=True`, as DeepLab): 513 = 8 * 64 + 1 input pixels map onto
    65 feature pixels exactly, feature pixel i sitting on input pixel 8i."""
    (h, w), (H, W) = x.shape[1:3], size
    scale = jnp.array([(H - 1) / max(h - 1, 1), (W - 1) / max(w - 1, 1)], jnp.float32)
    # scale_and_translate samples input position (out + 0.5 - t) / s - 0.5; this t
    # makes that out * (h - 1) / (H - 1).
    translation = 0.5 * (1.0 - scale)
    return jax.image.scale_and_translate(x, (x.shape[0], H, W, x.shape[3]), (1, 2), scale,
                                         translation, method="linear", antialias=False)


def scaled_rates(rates: tuple[int, ...], output_stride: int) -> tuple[int, ...]:
    """Rates given at output stride 8, for `output_stride` (16 halves them)."""
    return tuple(max(1, r * 8 // output_stride) for r in rates)


class ASPP(nn.Module):
    """Parallel 3x3 atrous convolutions to class scores, summed."""

    num_classes: int
    rates: tuple[int, ...]
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        total = None
        for r in self.rates:
            y = nn.Conv(self.num_classes, (3, 3), kernel_dilation=(r, r), padding="SAME",
                        dtype=self.dtype, kernel_init=nn.initializers.xavier_uniform(),
                        name=f"rate{r}")(x)
            total = y if total is None else total + y
        return total


class DeepLab(nn.Module):
    """`__call__(images, train)` returns (logits [B, H, W, num_classes] at the input
    size, float32; named outputs: the body's `conv1`...`conv5`, `pre_logits`, and
    `aspp_logits` at the feature resolution)."""

    num_classes: int = 21
    depth: int = 101
    width: float = 1.0
    output_stride: int = 8
    # Rates at output stride 8; scaled by 8 / output_stride.
    rates: tuple[int, ...] = ASPP_L_RATES
    dtype: Any = jnp.float32
    frozen: str | None = None

    def setup(self):
        if self.output_stride not in (8, 16):
            raise ValueError(f"DeepLab output_stride must be 8 or 16, not "
                             f"{self.output_stride}.")
        if not self.num_classes or self.num_classes < 1:
            raise ValueError(f"DeepLab num_classes={self.num_classes!r}: set model.num_classes "
                             "to the number of segmentation classes (background included).")
        self.body = ResNet(depth=self.depth, num_classes=0, width=self.width,
                           output_stride=self.output_stride, dtype=self.dtype,
                           frozen=self.frozen)
        nn.share_scope(self, self.body)
        self.aspp = ASPP(self.num_classes, scaled_rates(self.rates, self.output_stride),
                         self.dtype)

    def __call__(self, images: jax.Array, train: bool = False
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
        _, named = self.body(images, train)
        low = self.aspp(named["conv5"]).astype(jnp.float32)
        logits = upsample_align_corners(low, images.shape[1:3])
        return logits, {**named, "aspp_logits": low}
