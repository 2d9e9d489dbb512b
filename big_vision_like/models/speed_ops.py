"""Other forms of three ResNet ops, with the same parameters and results, that
a compiler may run faster (issue 14's GPU step attempts).

- `PointwiseConv`: a 1x1 convolution as a matrix product over channels. XLA
  lowers a convolution to a cuDNN call, which takes its input from memory; a
  matrix product can instead become a Triton GEMM that reads the batch-norm
  and ReLU before it inside its prologue, so their output is never written.
- `SpaceToDepthStemConv`: the 7x7 stride-2 stem convolution on 3 channels as
  a 4x4 stride-1 convolution on 12 (each 2x2 pixel block folded into
  channels; TPU ResNets do this, since 3 channels fill the matrix units badly).
- `max_pool_by_slices`: max pooling as the maximum of the window's strided
  slices, whose gradient is elementwise selects instead of XLA's
  select-and-scatter (overlapping windows scatter with atomics on GPUs).

Each keeps the parameter tree of the op it replaces (`kernel`, same shape and
initialiser), so checkpoints move between the forms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import lax


class PointwiseConv(nn.Module):
    """nn.Conv(features, (1, 1), strides, padding="SAME", use_bias=False) as a matmul."""

    features: int
    strides: int = 1
    dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, (1, 1, x.shape[-1], self.features),
                            jnp.float32)
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        if self.strides > 1:  # SAME padding of a 1x1 window pads nothing: a strided slice
            x = x[:, ::self.strides, ::self.strides]
        return lax.dot_general(x, kernel[0, 0], (((x.ndim - 1,), (0,)), ((), ())))


class SpaceToDepthStemConv(nn.Module):
    """nn.Conv(features, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], use_bias=False)
    computed as a 4x4 stride-1 convolution over 2x2 pixel blocks."""

    features: int
    dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        n, h, w, c = x.shape
        kernel = self.param("kernel", self.kernel_init, (7, 7, c, self.features), jnp.float32)
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        # Output pixel i reads padded rows 2i..2i+6; an 8th zero tap makes the
        # window two whole blocks wide per step, and the padding is made even.
        x = jnp.pad(x, ((0, 0), (3, 3 + h % 2), (3, 3 + w % 2), (0, 0)))
        bh, bw = x.shape[1] // 2, x.shape[2] // 2
        x = x.reshape(n, bh, 2, bw, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, bh, bw, 4 * c)
        kernel = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
        kernel = kernel.reshape(4, 2, 4, 2, c, self.features).transpose(0, 2, 1, 3, 4, 5)
        kernel = kernel.reshape(4, 4, 4 * c, self.features)
        return lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def max_pool_by_slices(x, window: int = 3, strides: int = 2):
    """nn.max_pool(x, (window, window), (strides, strides), padding="SAME").

    Forward values are identical. Where several inputs of a window tie for
    the maximum, the gradient is shared between them (jnp.maximum's rule)
    rather than given to the first; behind a ReLU, as in the ResNet stem,
    ties at zero get no gradient either way.
    """
    pads = lax.padtype_to_pads(x.shape[1:3], (window, window), (strides, strides), "SAME")
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
    out_h = (x.shape[1] - window) // strides + 1
    out_w = (x.shape[2] - window) // strides + 1
    out = None
    for i in range(window):
        for j in range(window):
            tap = x[:, i:i + strides * (out_h - 1) + 1:strides,
                    j:j + strides * (out_w - 1) + 1:strides]
            out = tap if out is None else jnp.maximum(out, tap)
    return out
