"""Grid anchors like the TF OD API's grid_anchor_generator (static, NumPy)."""

from collections.abc import Sequence

import numpy as np


def grid_anchors(
    feature_hw: tuple[int, int],
    stride: int,
    base_size: float,
    scales: Sequence[float],
    aspect_ratios: Sequence[float],
) -> np.ndarray:
    """Anchors [Hf*Wf*A, 4] (ymin, xmin, ymax, xmax) in input pixels, float32.

    A = len(scales) * len(aspect_ratios). Order is location-major: anchor
    index = (y * Wf + x) * A + a with a = scale_index * len(aspect_ratios) +
    ratio_index. The anchor at grid cell (y, x) is centred at
    ((y + 0.5) * stride, (x + 0.5) * stride) with height
    base_size * scale / sqrt(ratio) and width base_size * scale * sqrt(ratio)
    (ratio = width / height).
    """
    hf, wf = int(feature_hw[0]), int(feature_hw[1])
    if hf < 1 or wf < 1 or stride <= 0 or not scales or not aspect_ratios:
        raise ValueError(
            f"grid_anchors needs a non-empty feature map, stride > 0 and at least one scale and "
            f"ratio; got feature_hw={feature_hw}, stride={stride}, scales={scales}, "
            f"aspect_ratios={aspect_ratios}.")
    scale = np.repeat(np.asarray(scales, np.float64), len(aspect_ratios))
    ratio = np.tile(np.asarray(aspect_ratios, np.float64), len(scales))
    heights = base_size * scale / np.sqrt(ratio)
    widths = base_size * scale * np.sqrt(ratio)
    cy = (np.arange(hf, dtype=np.float64) + 0.5) * stride
    cx = (np.arange(wf, dtype=np.float64) + 0.5) * stride
    cy = cy[:, None, None]
    cx = cx[None, :, None]
    anchors = np.stack(np.broadcast_arrays(
        cy - 0.5 * heights, cx - 0.5 * widths, cy + 0.5 * heights, cx + 0.5 * widths), axis=-1)
    return anchors.reshape(-1, 4).astype(np.float32)
