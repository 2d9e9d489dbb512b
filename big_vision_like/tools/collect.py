"""A metric of a set of runs against their pre-training data size, one curve per
value of a config field, with the log-linear fit of each (the paper's Figure 4).

    python -m big_vision_like.tools.collect W [W2/run ...] --metric fasteval/map@100 \\
        --x examples --curve model.depth [--at final|best|step=N|epoch=E] \\
        --png data_size.png --markdown data_size.md

Each argument is a run's workdir (config.json, metrics.jsonl) or a sweep's
folder (its sweep.json lists the runs). The metric is the run's last logged
value (final), its best over the run (best: the highest, the lowest for a
metric named *loss*), or its value at a step (step=N) or at the end of an epoch
of the run's data (epoch=E, made a step as the trainer makes `*_epochs` one).

x: the pre-training examples of a run: the size of `input.data.split` of
`input.data.name` from the TFDS builder's info in `input.data.data_dir`, or of
its random `input.data.subset_fraction`, counted exactly as the trainer counts
it (--split_examples N where the dataset is not on this machine: then the
fraction times N). A run started from `init_from.checkpoint`
was pre-trained by the run that wrote that checkpoint: its data is read from
that run's config.json (<checkpoint>/../../config.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from big_vision_like import filesystem as fs
from big_vision_like.metrics import read_metrics
from big_vision_like.tools.loglinear import Fit, fit_log_linear
from big_vision_like.tools.sweep import MANIFEST


@dataclasses.dataclass(frozen=True)
class Point:
    workdir: str
    curve: Any
    fraction: float
    examples: float
    step: int
    value: float


def workdirs_of(paths: Sequence[str]) -> list[str]:
    """Runs' workdirs; a sweep folder stands for the started runs of its sweep.json."""
    out = []
    for path in paths:
        manifest = fs.join(path, MANIFEST)
        if fs.exists(manifest):
            runs = [r["workdir"] for r in _read_json(manifest)["runs"]]
            started = [w for w in runs if fs.exists(fs.join(w, "config.json"))]
            if len(started) < len(runs):  # a sweep still running: collect what is there
                print(f"{path}: {len(runs) - len(started)} of its {len(runs)} runs have "
                      "not started; left out.", file=sys.stderr)
            out += started
        else:
            out.append(path)
    return out


def _read_json(path: str) -> dict:
    with fs.open(path) as f:
        return json.load(f)


def field_of(config: dict, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def metric_at(rows: Sequence[dict], metric: str, at: str, workdir: str) -> tuple[int, float]:
    """(step, value) of `metric`: at 'final', 'best' or 'step=N' ('epoch=E' is made
    a step by `epoch_step` first)."""
    logged = [(int(r["step"]), float(r[metric])) for r in rows
              if metric in r and isinstance(r[metric], (int, float))]
    if not logged:
        names = sorted({k for r in rows for k in r if k != "step"})
        raise ValueError(f"{workdir}: no {metric!r} in metrics.jsonl; it has {names}.")
    if at == "final":
        return logged[-1]
    if at == "best":
        lower = "loss" in metric.rsplit("/", 1)[-1]
        finite = [p for p in logged if np.isfinite(p[1])] or logged
        return (min if lower else max)(finite, key=lambda p: p[1])
    if at.startswith("step="):
        step = int(at[len("step="):])
        for s, v in logged:
            if s == step:
                return s, v
        raise ValueError(f"{workdir}: {metric!r} was not logged at step {step}; it was at "
                         f"steps {[s for s, _ in logged]}.")
    raise ValueError(f"--at {at!r}: give final, best, step=N or epoch=E.")


def epoch_step(at: str, config: dict, examples: float) -> str:
    """'epoch=E' as 'step=N' for a run with `examples` per epoch: N as the trainer
    computes it (big_vision_like/durations.py, rounded up); other `at` unchanged."""
    if not at.startswith("epoch="):
        return at
    from big_vision_like.durations import Durations

    batch = field_of(config, "batch_size")
    steps = Durations(int(batch), int(examples)).to_steps(float(at[len("epoch="):]),
                                                          "epochs", "--at")
    return f"step={steps}"


def _fraction(data: dict) -> float:
    fraction = data.get("subset_fraction")
    return 1.0 if fraction is None else float(fraction)


def examples_from_tfds(data: dict) -> int:
    """The examples a run trained on: its split's, or its random subset's, counted
    exactly as the trainer counts them (input_pipeline/subsets.py)."""
    from input_pipeline import subsets
    from input_pipeline.sources.registry import open_source

    source = open_source(data["name"], data.get("data_dir"), prepare=False)
    split = data.get("split", "train")
    if data.get("subset_fraction") is None:
        return source.num_examples(split)
    return subsets.subset_size(source, split, _fraction(data), int(data.get("subset_seed", 0)))


def pretraining_data(workdir: str, config: dict, examples_of: Callable[[dict], float],
                     follow_init_from: bool = True) -> tuple[float, float]:
    """(subset fraction, examples) of the data the run's weights were pre-trained on."""
    seen = [workdir]
    while follow_init_from and field_of(config, "init_from.checkpoint"):
        checkpoint = field_of(config, "init_from.checkpoint")
        source = fs.parent(fs.normpath(checkpoint), 2)
        path = fs.join(source, "config.json")
        if not fs.exists(path) or source in seen:
            raise ValueError(
                f"{seen[-1]} starts from {checkpoint}, but {path} (the pre-training run's "
                "config) is missing; pass --nofollow_init_from to use the run's own data.")
        seen.append(source)
        config = _read_json(path)
    data = field_of(config, "input.data") or {}
    return _fraction(data), examples_of(data)


def collect(workdirs: Sequence[str], metric: str, curve: str | None = None,
            at: str = "final", split_examples: Callable[[dict], int] | int | None = None,
            follow_init_from: bool = True) -> list[Point]:
    """split_examples: the split's size where its dataset is not on this machine
    (a run then counts fraction x size); by default each run's examples are
    counted from the TFDS builder in its data_dir."""
    if isinstance(split_examples, int):
        fixed = split_examples
        split_examples = lambda data: _fraction(data) * fixed
    sizes: dict[str, float] = {}

    def size(data: dict) -> float:  # one count per data config, not per run
        key = json.dumps(data, sort_keys=True)
        if key not in sizes:
            sizes[key] = (split_examples or examples_from_tfds)(data)
        return sizes[key]

    points = []
    for workdir in workdirs:
        path = fs.join(workdir, "config.json")
        if not fs.exists(path):
            raise ValueError(f"{workdir} has no config.json: not a run's workdir (or the "
                             "run has not started); give runs' workdirs or a sweep folder.")
        config = _read_json(path)
        own = field_of(config, "input.data") or {}  # an epoch is of the run's own data
        run_at = epoch_step(at, config, size(own)) if at.startswith("epoch=") else at
        step, value = metric_at(read_metrics(workdir), metric, run_at, workdir)
        fraction, examples = pretraining_data(workdir, config, size, follow_init_from)
        points.append(Point(workdir, field_of(config, curve) if curve else None,
                            fraction, examples, step, value))
    return points


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def curves_of(points: Sequence[Point]) -> dict[Any, list[Point]]:
    """Points by curve value (in the values' order where they compare), each
    curve's points by data size."""
    curves: dict[Any, list[Point]] = {}
    for p in points:
        curves.setdefault(_hashable(p.curve), []).append(p)
    try:
        keys = sorted(curves)
    except TypeError:  # e.g. None beside numbers
        keys = list(curves)
    return {k: sorted(curves[k], key=lambda p: p.examples) for k in keys}


def fits_of(points: Sequence[Point], x: str = "examples") -> dict[Any, Fit | None]:
    """Per curve, the fit of value ~ a + b log10(x); None with under two x values."""
    out = {}
    for key, pts in curves_of(points).items():
        xs = [getattr(p, x) for p in pts]
        out[key] = fit_log_linear(xs, [p.value for p in pts]) \
            if len(set(xs)) > 1 else None
    return out


def markdown(points: Sequence[Point], fits: dict[Any, Fit | None], metric: str,
             curve: str | None, x: str) -> str:
    label = curve or "curve"
    lines = [f"| run | {label} | subset fraction | examples | step | {metric} |",
             "|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {fs.basename(fs.normpath(p.workdir))} | {p.curve} | "
                     f"{p.fraction:g} | {p.examples:,.0f} | {p.step} | {p.value:.4f} |")
    lines += ["", f"Fit per {label}: {metric} = a + b * log10({x}); b is the change per "
              f"10x {x}.", "", f"| {label} | runs | a | b (per 10x) | R^2 |",
              "|---|---|---|---|---|"]
    for key, fit in fits.items():
        if fit is None:
            lines.append(f"| {key} | – | – | – | needs two data sizes |")
        else:
            lines.append(f"| {key} | {fit.n} | {fit.a:.4f} | {fit.b:+.4f} | {fit.r2:.4f} |")
    return "\n".join(lines) + "\n"


def plot(points: Sequence[Point], fits: dict[Any, Fit | None], path: str, metric: str,
         curve: str | None, x: str, size: tuple[float, float] = (6.4, 4.8),
         dpi: int = 100) -> None:
    """The metric against data size on a log x axis: per curve its points joined,
    and its fitted line dashed in the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    for i, (key, pts) in enumerate(curves_of(points).items()):
        color = f"C{i % 10}"
        xs = np.array([getattr(p, x) for p in pts])
        name = f"{curve.rsplit('.', 1)[-1]}={key}" if curve else "runs"
        fit = fits.get(key)
        if fit is not None:
            name += f" (b={fit.b:+.3g} per 10x, R²={fit.r2:.3f})"
            grid = np.geomspace(xs.min(), xs.max(), 50)
            ax.plot(grid, fit(grid), "--", color=color)
        ax.plot(xs, [p.value for p in pts], "o-", color=color, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("pre-training examples" if x == "examples" else "subset fraction")
    ax.set_ylabel(metric)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, dpi=dpi, format="png")
    fs.write_atomic(path, png.getvalue())
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m big_vision_like.tools.collect",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("workdirs", nargs="+", help="Runs' workdirs or sweep folders.")
    p.add_argument("--metric", required=True, help="e.g. fasteval/map@100")
    p.add_argument("--x", choices=("examples", "subset_fraction"), default="examples")
    p.add_argument("--curve", default=None, help="Config field, e.g. model.depth.")
    p.add_argument("--at", default="final", help="final, best, step=N or epoch=E.")
    p.add_argument("--split_examples", type=int, default=None,
                   help="Size of the pre-training split (default: from TFDS).")
    p.add_argument("--nofollow_init_from", action="store_true",
                   help="Use each run's own data, not that of its init_from run.")
    p.add_argument("--png", default=None)
    p.add_argument("--markdown", default=None)
    args = p.parse_args(argv)
    x = "fraction" if args.x == "subset_fraction" else "examples"
    try:
        points = collect(workdirs_of(args.workdirs), args.metric, args.curve, args.at,
                         args.split_examples, not args.nofollow_init_from)
        fits = fits_of(points, x)
    except ValueError as e:
        sys.exit(f"error: {e}")
    text = markdown(points, fits, args.metric, args.curve, args.x)
    sys.stdout.write(text)
    if args.markdown:
        with fs.open(args.markdown, "w") as f:
            f.write(text)
    if args.png:
        plot(points, fits, args.png, args.metric, args.curve, x)


if __name__ == "__main__":
    main()
