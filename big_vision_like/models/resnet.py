"""ResNet v1 (He et al. 2016) with batch norm after every convolution.

Bottleneck blocks for depths 50/101/152, basic blocks for 18/34, a width
multiplier for small runs. The stride of a downsampling bottleneck sits on
its 3x3 convolution (as in torchvision and flax's ImageNet example);
parameter counts are those of the original. `__call__` returns the logits
and a dict of named outputs: `conv1`, `conv2` ... `conv5` (stage outputs),
`pre_logits` (pooled features). `output_stride` 16 or 8 turns the last
stages atrous (dilated) for dense prediction.

Every parameter path starts with its stage's name (`conv1`, `conv1_bn`,
`conv2_block1/...`, ..., `head`), so one regex selects a prefix of the
network: `frozen='^(conv1|conv[2-4])'` freezes everything up to conv4.
Batch norms whose scale is frozen run in inference mode (running averages
in, statistics not updated), as a frozen feature extractor must.

Batch-norm statistics are means over the whole batch axis; under jit with
the batch sharded over `data`, XLA reduces them across devices, so they
are global-batch statistics whatever the mesh.
"""

from __future__ import annotations

import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from big_vision_like.models import speed_ops

STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
          101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def _conv(features: int, kernel: int, strides: int = 1, dilation: int = 1,
          dtype: Any = jnp.float32, name: str | None = None) -> nn.Conv:
    return nn.Conv(features, (kernel, kernel), (strides, strides),
                   kernel_dilation=(dilation, dilation), padding="SAME", use_bias=False,
                   dtype=dtype, name=name,
                   kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))


def _norm(train: bool, dtype: Any, name: str, zero_scale: bool = False,
          frozen: str | None = None, prefix: tuple[str, ...] = ()) -> nn.BatchNorm:
    if frozen and re.search(frozen, "/".join((*prefix, name, "scale"))):
        train = False
    # A zero scale on a block's last BN makes the block start as the identity.
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        dtype=dtype, name=name,
                        scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones)


class _Block(nn.Module):
    """Fields shared by both block kinds."""

    filters: int
    strides: int = 1
    dilation: int = 1
    dtype: Any = jnp.float32
    frozen: str | None = None

    def norm(self, train: bool, name: str, zero_scale: bool = False) -> nn.BatchNorm:
        return _norm(train, self.dtype, name, zero_scale, self.frozen, self.path)


class BottleneckBlock(_Block):
    @nn.compact
    def __call__(self, x, train: bool):
        dt = self.dtype
        y = nn.relu(self.norm(train, "bn1")(_conv(self.filters, 1, dtype=dt, name="conv1")(x)))
        y = nn.relu(self.norm(train, "bn2")(_conv(self.filters, 3, self.strides, self.dilation,
                                                  dt, name="conv2")(y)))
        y = self.norm(train, "bn3", zero_scale=True)(
            _conv(self.filters * 4, 1, dtype=dt, name="conv3")(y))
        if x.shape != y.shape:
            x = self.norm(train, "proj_bn")(_conv(self.filters * 4, 1, self.strides, dtype=dt,
                                                  name="proj")(x))
        return nn.relu(x + y)


class BasicBlock(_Block):
    @nn.compact
    def __call__(self, x, train: bool):
        dt = self.dtype
        y = nn.relu(self.norm(train, "bn1")(_conv(self.filters, 3, self.strides, self.dilation,
                                                  dt, name="conv1")(x)))
        y = self.norm(train, "bn2", zero_scale=True)(
            _conv(self.filters, 3, 1, self.dilation, dt, name="conv2")(y))
        if x.shape != y.shape:
            x = self.norm(train, "proj_bn")(_conv(self.filters, 1, self.strides, dtype=dt,
                                                  name="proj")(x))
        return nn.relu(x + y)


class ResNet(nn.Module):
    """ResNet v1; `num_classes=0` gives features only (logits are None)."""

    depth: int = 50
    num_classes: int = 1000
    width: float = 1.0
    head_bias_init: float = 0.0
    output_stride: int = 32
    dtype: Any = jnp.float32
    frozen: str | None = None  # regex over parameter paths, see the module docstring
    # Other forms of the stem's ops with the same parameters and results
    # (models/speed_ops.py). The space-to-depth convolution made the ResNet-50
    # step 4.5% faster on an H200 but the demo's step 17% slower on CPU cores:
    # None picks it on accelerators, the plain convolution on the CPU.
    stem_space_to_depth: bool | None = None
    max_pool_gather_grad: bool = False

    def stem(self, images, train: bool):
        """conv1 (7x7, stride 2) and its max pool: stride 4. Call inside a compact method."""
        features = int(64 * self.width)
        s2d = self.stem_space_to_depth
        if s2d if s2d is not None else jax.default_backend() != "cpu":
            conv = speed_ops.SpaceToDepthStemConv(features, self.dtype, name="conv1")
        else:
            conv = nn.Conv(features, (7, 7), (2, 2), padding=[(3, 3), (3, 3)],
                           use_bias=False, dtype=self.dtype, name="conv1")
        x = nn.relu(_norm(train, self.dtype, "conv1_bn", frozen=self.frozen)(
            conv(images.astype(self.dtype))))
        if self.max_pool_gather_grad:
            return x, speed_ops.max_pool_gather_grad(x, 3, 2)
        return x, nn.max_pool(x, (3, 3), (2, 2), padding="SAME")

    def stage(self, x, index: int, strides: int, dilation: int, train: bool):
        """Stage `index` (0 for conv2 ... 3 for conv5), its first block strided."""
        if self.depth not in STAGES:
            raise ValueError(f"ResNet depth {self.depth} is not one of {sorted(STAGES)}.")
        block_cls = BottleneckBlock if self.depth >= 50 else BasicBlock
        for j in range(STAGES[self.depth][index]):
            x = block_cls(int(64 * self.width) * 2 ** index, strides=strides if j == 0 else 1,
                          dilation=dilation, dtype=self.dtype, frozen=self.frozen,
                          name=f"conv{index + 2}_block{j + 1}")(x, train)
        return x

    @staticmethod
    def stage_plan(output_stride: int) -> list[tuple[int, int]]:
        """(first-block stride, dilation) of conv2..conv5 for an output stride: past
        it, stages are atrous instead of strided."""
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, not {output_stride}.")
        plan, stride, dilation = [], 4, 1
        for i in range(4):
            first_stride = 1 if i == 0 else 2
            if first_stride == 2 and stride >= output_stride:
                first_stride, dilation = 1, dilation * 2
            stride *= first_stride
            plan.append((first_stride, dilation))
        return plan

    @nn.compact
    def __call__(self, images, train: bool = False):
        out: dict[str, jnp.ndarray] = {}
        out["conv1"], x = self.stem(images, train)
        for i, (strides, dilation) in enumerate(self.stage_plan(self.output_stride)):
            x = out[f"conv{i + 2}"] = self.stage(x, i, strides, dilation, train)
        out["pre_logits"] = x.mean(axis=(1, 2)).astype(jnp.float32)
        if not self.num_classes:
            return None, out
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head",
                          kernel_init=nn.initializers.zeros,
                          bias_init=nn.initializers.constant(self.head_bias_init)
                          )(out["pre_logits"])
        return logits.astype(jnp.float32), out


def load(flat: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint surgery for `init_from`: paths of earlier versions of this model.

    `flat` maps '/'-joined variable paths ('params/conv1/kernel', ...) to
    arrays; checkpoints written before the stem's batch norm was renamed
    call it `bn1` at the top level.
    """
    renamed = {}
    for path, value in flat.items():
        collection, _, rest = path.partition("/")
        if rest.startswith("bn1/"):
            rest = "conv1_bn/" + rest[len("bn1/"):]
        renamed[f"{collection}/{rest}"] = value
    return renamed
