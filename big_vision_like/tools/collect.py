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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from big_vision_like import filesystem as fs
from big_vision_like.metrics import read_metrics
from big_vision_like.tools.curve_forms import held_out_predictions, mean_interval
from big_vision_like.tools.loglinear import Fit, fit_log_linear
from big_vision_like.tools.sweep import MANIFEST
from evaluators.bootstrap import HI as CI_HI
from evaluators.bootstrap import LO as CI_LO


@dataclasses.dataclass(frozen=True)
class Point:
    workdir: str
    curve: Any
    fraction: float
    examples: float
    step: int
    value: float
    seed: int = 0
    # The run's own 95% interval over evaluation images, where its evaluator
    # logged one (`bootstrap: N`; evaluators/bootstrap.py).
    lo: float | None = None
    hi: float | None = None


@dataclasses.dataclass(frozen=True)
class Summary:
    """The runs of one curve at one data size (seeds apart)."""

    curve: Any
    fraction: float
    examples: float
    steps: tuple[int, ...]
    values: tuple[float, ...]
    mean: float
    std: float  # over runs (ddof=1; 0 for one run)
    lo: float  # Student-t 95% interval of the mean over runs (NaN for one run)
    hi: float
    images_lo: float | None  # the runs' bootstrap intervals over images, averaged
    images_hi: float | None


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
        rows = read_metrics(workdir)
        step, value = metric_at(rows, metric, run_at, workdir)
        lo, hi = (_logged_at(rows, metric + suffix, step) for suffix in (CI_LO, CI_HI))
        fraction, examples = pretraining_data(workdir, config, size, follow_init_from)
        points.append(Point(workdir, field_of(config, curve) if curve else None,
                            fraction, examples, step, value, int(config.get("seed") or 0),
                            lo, hi))
    return points


def _logged_at(rows: Sequence[dict], metric: str, step: int) -> float | None:
    for r in rows:
        if int(r["step"]) == step and isinstance(r.get(metric), (int, float)):
            return float(r[metric])
    return None


def summaries(points: Sequence[Point]) -> list[Summary]:
    """Per curve and data size, the runs' mean, spread and intervals."""
    out = []
    for key, pts in curves_of(points).items():
        by_size: dict[float, list[Point]] = {}
        for p in pts:
            by_size.setdefault(p.examples, []).append(p)
        for examples, group in by_size.items():
            values = [p.value for p in group]
            mean, lo, hi = mean_interval(values)
            boots = [(p.lo, p.hi) for p in group if p.lo is not None and p.hi is not None]
            out.append(Summary(
                key, group[0].fraction, examples, tuple(p.step for p in group),
                tuple(values), mean, float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                lo, hi, float(np.mean([b[0] for b in boots])) if boots else None,
                float(np.mean([b[1] for b in boots])) if boots else None))
    return out


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


def _interval(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None or not np.isfinite(lo):
        return "–"
    return f"[{lo:.4f}, {hi:.4f}]"


def markdown(points: Sequence[Point], fits: dict[Any, Fit | None], metric: str,
             curve: str | None, x: str) -> str:
    """Per curve and size: the runs' mean, standard deviation over seeds, the 95%
    interval of the mean over seeds and the runs' interval over evaluation images;
    then per curve the log-linear fit with its slope's interval, and the forms
    judged on the largest size (tools/curve_forms.py)."""
    label = curve or "curve"
    groups = summaries(points)
    lines = [f"| {label} | subset fraction | examples | steps | seeds | {metric} mean | "
             "std | 95% CI (seeds) | 95% CI (images) |", "|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        steps = "/".join(str(s) for s in sorted(set(g.steps)))
        lines.append(f"| {g.curve} | {g.fraction:g} | {g.examples:,.0f} | {steps} | "
                     f"{len(g.values)} | {g.mean:.4f} | {g.std:.4f} | "
                     f"{_interval(g.lo, g.hi)} | {_interval(g.images_lo, g.images_hi)} |")
    lines += ["", f"Fit per {label} over every run: {metric} = a + b * log10({x}); b is the "
              f"change per 10x {x}, with its 95% interval.", "",
              f"| {label} | runs | a | b (per 10x) | 95% CI of b | R^2 |",
              "|---|---|---|---|---|---|"]
    for key, fit in fits.items():
        if fit is None:
            lines.append(f"| {key} | – | – | – | – | needs two data sizes |")
        else:
            lines.append(f"| {key} | {fit.n} | {fit.a:.4f} | {fit.b:+.4f} | "
                         f"{_interval(fit.b_lo, fit.b_hi)} | {fit.r2:.4f} |")
    forms = []
    for key, pts in curves_of(points).items():
        if len({getattr(p, x) for p in pts}) < 3:
            continue
        for h in held_out_predictions([getattr(p, x) for p in pts], [p.value for p in pts]):
            if not np.isfinite(h.predicted):  # the form could not be fitted
                forms.append(f"| {key} | {h.form} | – | {h.observed:.4f} | – | – | – |")
                continue
            within = "yes" if h.within else ("–" if not np.isfinite(h.lo) else "no")
            forms.append(f"| {key} | {h.form} | {h.predicted:.4f} | {h.observed:.4f} "
                         f"{_interval(h.lo, h.hi)} | {h.error:+.4f} | {within} | {h.r2:.4f} |")
    if forms:
        lines += ["", f"Each form fitted without the largest {x} and judged on it "
                  "(big_vision_like/tools/curve_forms.py); R^2 is in sample, over every size.",
                  "", f"| {label} | form | predicted | observed (95% CI) | error | "
                  "within CI | R^2 |", "|---|---|---|---|---|---|---|", *forms]
    return "\n".join(lines) + "\n"


def plot(points: Sequence[Point], fits: dict[Any, Fit | None], path: str, metric: str,
         curve: str | None, x: str, size: tuple[float, float] = (6.4, 4.8),
         dpi: int = 100, names: Mapping[Any, str] | None = None) -> None:
    """The metric against data size on a log x axis: per curve the mean of its runs
    with the 95% interval over seeds as error bars (over evaluation images where a
    size has one run), and its fitted line dashed in the same colour. `names`:
    a legend label per curve value (default '<field>=<value>')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    groups = summaries(points)
    for i, key in enumerate(curves_of(points)):
        color = f"C{i % 10}"
        mine = [g for g in groups if g.curve == key]
        xs = np.array([g.examples if x == "examples" else g.fraction for g in mine])
        means = np.array([g.mean for g in mine])
        lo = np.array([g.lo if np.isfinite(g.lo) else (g.images_lo or g.mean) for g in mine])
        hi = np.array([g.hi if np.isfinite(g.hi) else (g.images_hi or g.mean) for g in mine])
        name = (names or {}).get(key) or (f"{curve.rsplit('.', 1)[-1]}={key}" if curve
                                          else "runs")
        fit = fits.get(key)
        if fit is not None:
            name += f" (b={fit.b:+.3g} per 10x, R²={fit.r2:.3f})"
            grid = np.geomspace(xs.min(), xs.max(), 50)
            ax.plot(grid, fit(grid), "--", color=color)
        ax.errorbar(xs, means, yerr=[means - lo, hi - means], fmt="o-", color=color,
                    capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("pre-training examples" if x == "examples" else "subset fraction")
    ax.set_ylabel(metric + " (mean, 95% CI)")
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
