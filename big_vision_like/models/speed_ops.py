"""Other forms of ResNet stem ops, with the same parameters and results, that
run faster (issue 14's GPU step attempts; BENCHMARKS.md has the figures).

- `SpaceToDepthStemConv`: the 7x7 stride-2 stem convolution on 3 channels as
  a 4x4 stride-1 convolution on 12 (each 2x2 pixel block folded into
  channels; TPU ResNets do this, since 3 channels fill the matrix units
  badly). It keeps nn.Conv's parameter (`kernel`, 7x7x3xF, same initialiser),
  so checkpoints move between the forms. On an H200 the ResNet-50 step ran
  4.5% faster with it: cuDNN's 3-channel kernels were 6.5% of the step.
- `max_pool_gather_grad`: the stem's max pool with its gradient computed by
  elementwise compares and strided pads instead of XLA's select-and-scatter,
  which ran as one scatter kernel taking 3.5% of that step.

Tried and dropped (slower on the H200): 1x1 convolutions as explicit
matmuls (XLA's cuDNN already runs them with cuBLAS's matmul kernels), max
pooling as a maximum of strided slices left to autodiff, and batch-norm
statistics reduced in bfloat16.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


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


def _max_pool(x, window: int, strides: int):
    return nn.max_pool(x, (window, window), (strides, strides), padding="SAME")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool_gather_grad(x, window: int = 3, strides: int = 2):
    """nn.max_pool(x, (window, window), (strides, strides), padding="SAME"), with
    the same gradient (each window's first maximum, in row-major order, gets
    it) computed from the window's taps: per tap a compare and a select, and
    one strided pad-and-add into the input's shape, all elementwise."""
    return _max_pool(x, window, strides)


def _max_pool_fwd(x, window, strides):
    y = _max_pool(x, window, strides)
    return y, (x, y)


def _max_pool_bwd(window, strides, residuals, g):
    x, y = residuals
    pads = lax.padtype_to_pads(x.shape[1:3], (window, window), (strides, strides), "SAME")
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
    out_h, out_w = y.shape[1:3]
    span_h, span_w = strides * (out_h - 1) + 1, strides * (out_w - 1) + 1
    taken = jnp.zeros(y.shape, bool)
    dxp = jnp.zeros(xp.shape, g.dtype)
    for i in range(window):
        for j in range(window):
            hit = (xp[:, i:i + span_h:strides, j:j + span_w:strides] == y) & ~taken
            taken = taken | hit
            # Back to the padded input's grid: tap (i, j) of output (a, b) is
            # input (strides * a + i, strides * b + j).
            dxp = dxp + lax.pad(jnp.where(hit, g, 0).astype(g.dtype), jnp.zeros((), g.dtype),
                                ((0, 0, 0), (i, xp.shape[1] - i - span_h, strides - 1),
                                 (j, xp.shape[2] - j - span_w, strides - 1), (0, 0, 0)))
    (top, _), (left, _) = pads
    return (dxp[:, top:top + x.shape[1], left:left + x.shape[2]],)


max_pool_gather_grad.defvjp(_max_pool_fwd, _max_pool_bwd)
