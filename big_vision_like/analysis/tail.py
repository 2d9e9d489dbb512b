"""Per class and per image: AP against training frequency (the long tail), and
pre-logit features in 2-D by family."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from big_vision_like.analysis.run import Run
from evaluators import map_at_k
from input_pipeline.hierarchy import LabelHierarchy


def per_class_ap(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AP of each class over all images (map_at_k's AP, k=None); NaN for a class
    without a positive image."""
    ap, positives = map_at_k.average_precision(scores, np.asarray(labels) > 0, k=None)
    return np.where(positives > 0, ap, np.nan)


def train_frequency(run: Run) -> np.ndarray:
    """Training images carrying each class (ancestors filled in, as trained)."""
    fraction = run.data.train_label_frequencies()
    return np.rint(fraction * run.data.train_examples).astype(np.int64)


def tail_counts(counts: np.ndarray, limits: Sequence[int] = (100, 20)) -> dict[int, int]:
    """How many classes have fewer than each limit of training images."""
    counts = np.asarray(counts)
    return {int(n): int((counts < n).sum()) for n in limits}


def plot_ap_vs_frequency(ap: np.ndarray, counts: np.ndarray) -> Figure:
    """Per-class AP against training images (log x), with the median per decade."""
    ap, counts = np.asarray(ap, np.float64), np.asarray(counts, np.float64)
    keep = np.isfinite(ap) & (counts > 0)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(counts[keep], ap[keep], s=8, alpha=0.5, label="class")
    if keep.any():
        edges = 10.0 ** np.arange(0, np.ceil(np.log10(counts[keep].max())) + 1)
        bins = np.digitize(counts[keep], edges)
        centres, medians = [], []
        for b in np.unique(bins):
            centres.append(np.sqrt(edges[b - 1] * edges[min(b, len(edges) - 1)]))
            medians.append(np.median(ap[keep][bins == b]))
        ax.plot(centres, medians, "o-", color="C3", label="median per decade")
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class")
    ax.set_ylabel("AP")
    ax.set_title(f"per-class AP vs training frequency ({int(keep.sum())} classes)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def families(hierarchy: LabelHierarchy, labels: np.ndarray) -> np.ndarray:
    """Per image, the top-level ancestor (a class without parents) of its most
    specific label (the one with most ancestors; ties: the lowest id); -1 for an
    image without labels."""
    ancestors = hierarchy.ancestors()
    depth = np.array([len(a) for a in ancestors])
    root = np.array([min(int(a) for a in ancestors[c] if not hierarchy.parents[a])
                     for c in range(hierarchy.num_classes)])
    labels = np.asarray(labels) > 0
    deepest = np.argmax(np.where(labels, depth, -1), axis=1)  # first of the deepest
    return np.where(labels.any(axis=1), root[deepest], -1)


def project_2d(features: np.ndarray) -> np.ndarray:
    """The first two principal components of `features` [N, D] (centred, SVD)."""
    x = np.asarray(features, np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def plot_projection(points: np.ndarray, groups: np.ndarray,
                    names: Sequence[str]) -> Figure:
    """2-D points coloured by group id (names[id]); -1: unlabelled, grey."""
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    for i, g in enumerate(np.unique(groups)):
        at = groups == g
        ax.scatter(points[at, 0], points[at, 1], s=6, alpha=0.6,
                   color="0.6" if g < 0 else f"C{i % 10}",
                   label="no label" if g < 0 else names[g])
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title("pre-logit features, by family")
    ax.legend(markerscale=3, fontsize="small")
    return fig
