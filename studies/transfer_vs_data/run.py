"""The paper's headline in miniature: transfer against the size of the pre-training data.

    python -m studies.transfer_vs_data.run --workdir workdirs/transfer_vs_data \
        --data_dir data/tfds [--size demo|tiny]

Pre-trains at several data sizes with several seeds into <workdir>/pretrain
(the data-size study's epoch-matched regime, studies/data_size: a data-size
study already run with the same fractions and seeds can be moved there, and
its finished runs are not run again), then transfers every pre-trained checkpoint to
  detection     Faster R-CNN on the synthetic scenes, COCO box AP
                (configs/transfer/faster_rcnn_synthetic.py);
  segmentation  DeepLab on the synthetic scenes, mean IoU
                (configs/transfer/deeplab_synthetic.py);
  digits        real handwritten digits, top-1 (configs/transfer/digits.py);
each fine-tuned and (detection, segmentation) with the body frozen before
conv5 (the paper's Figures 4 and 6), plus the frozen-feature probes the
pre-training runs measure on digits (linear probe, 10-shot). Two controls
test the obvious explanations where the probes fall with data: the same
probes after compute-matched pre-training (every size the same steps; the
data-size study's steps regime, also run into <workdir>/pretrain), and
`probes`, a linear probe on conv4's features beside the last stage's
(evaluation-only runs from each checkpoint). Every metric has its 95%
bootstrap interval over the test images; a transfer run takes its
pre-training run's seed. The report (results.md, results.json, one plot per
target) gives each curve over seeds with intervals, its log-linear slope with
its interval, and the paper's findings one by one with what the miniature
shows (studies/transfer_vs_data/findings.py).

Every run is an ordinary trainer run (<workdir>/<target>/<setting>/<pre-training
run>). Each pre-training run's transfers follow it, and a finished run has a DONE
file and is not repeated: a killed study resumes, and a study restored from its
committed files (configs, metrics, DONE files; no checkpoints) goes on with the
units it has not finished.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from big_vision_like import filesystem as fs
from big_vision_like.tools import collect, sweep
from configs.transfer import deeplab_synthetic, digits, faster_rcnn_synthetic
from configs.transfer.detection_common import FROZEN_CONV1_4
from studies.common import (
    add_report_flags,
    latest_checkpoint,
    match_model,
    read_json,
    report_tables,
    show_training_progress,
    train_run,
)
from studies.data_size import run as data_size
from studies.transfer_vs_data import findings

# target -> (config module, the metrics read, settings)
TARGETS = {
    "detection": (faster_rcnn_synthetic, ("test/AP",), ("finetune", "frozen")),
    "segmentation": (deeplab_synthetic, ("test/miou",), ("finetune", "frozen")),
    "digits": (digits, ("test/prec@1",), ("finetune",)),
    # No training: linear probes on the checkpoint's frozen features, from the last
    # stage (pooled conv5, as the pre-training runs' own probe) and from conv4: the
    # control for a last stage specialised to the pre-training labels.
    "probes": (digits, ("probe/accuracy", "probe_conv4/accuracy"), ("frozen_features",)),
}
# setting -> config.frozen
SETTINGS = {"finetune": None, "frozen": FROZEN_CONV1_4, "frozen_features": None}
NAMES = {None: "fine-tuned", FROZEN_CONV1_4: "frozen before conv5"}
PROBE_NAMES = {None: "frozen features, no training"}
# Measured by the pre-training runs themselves, on frozen features.
PROBES = ("digits_probe/accuracy", "digits_fewshot/10shot")
UPSTREAM = "fasteval/map@100"
COMPUTE_MATCHED = "pre-training, compute-matched"
RESAMPLES = 200


def transfer_config(target: str, setting: str, size: str, data_dir: str | None,
                    checkpoint: str, seed: int, total_steps: int | None = None
                    ) -> ml_collections.ConfigDict:
    module = TARGETS[target][0]
    c = module.get_config(size)
    c.input.data.data_dir = data_dir
    match_model(c, checkpoint, keys=("depth", "width"))  # the task keeps its model name
    if total_steps is not None:
        if c.schedule.name == "piecewise":  # its drops keep their place in the run
            scale = total_steps / c.total_steps
            c.schedule.boundaries_steps = tuple(max(1, round(b * scale))
                                                for b in c.schedule.boundaries_steps)
        c.total_steps = total_steps
    c.init_from.checkpoint = checkpoint
    c.frozen = SETTINGS[setting]
    resamples = RESAMPLES if size != "tiny" else 20
    if target == "probes":  # evaluate the checkpoint as it is: no step is trained
        c.total_steps = 0
        probe = {**c.evals.probe.to_dict(), "bootstrap": resamples}
        c.evals = ml_collections.ConfigDict({
            "probe": probe, "probe_conv4": {**probe, "pred": "features_conv4"}})
    else:  # the test metric with its interval: the other evaluators are not read here
        c.evals = ml_collections.ConfigDict({"test": {**c.evals.test.to_dict(),
                                                      "bootstrap": resamples}})
    c.ckpt_steps, c.keep_ckpts, c.seed = max(1, c.total_steps), 1, seed
    return c


def pretrained_runs(pretrain: str) -> list[str]:
    """The epoch-matched runs of a data-size study that have finished."""
    manifest = read_json(fs.join(pretrain, "epochs", "sweep.json"))
    return [r["workdir"] for r in manifest["runs"] if r.get("status") == "done"]


def run_dirs(workdir: str, target: str) -> list[str]:
    """The finished transfer runs of a target, every setting."""
    out = []
    for setting in TARGETS[target][2]:
        folder = fs.join(workdir, target, setting)
        if fs.isdir(folder):
            out += [fs.join(folder, d) for d in sorted(fs.listdir(folder))
                    if fs.exists(fs.join(folder, d, "metrics.jsonl"))]
    return out


def render(workdir: str, pretrain: str, targets: Sequence[str], sizes: dict[str, float],
           plots: bool = False) -> tuple[str, dict[str, Any]]:
    """(results.md, results.json content). `sizes`: subset fraction -> examples."""
    examples_of = lambda data: sizes[str(data["subset_fraction"])]
    regimes = data_size.regime_dirs(pretrain, read_json(fs.join(pretrain, "results.json"))[
        "runs"])
    curves: dict[str, list[collect.Point]] = {}
    for regime, prefix in (("epochs", "pre-training"), ("steps", COMPUTE_MATCHED)):
        for metric in (UPSTREAM, *PROBES) if regime in regimes else ():
            curves[f"{prefix}/{metric}"] = collect.collect(
                [fs.join(pretrain, d) for d in regimes[regime]], metric, None,
                split_examples=examples_of)
    for target in targets:
        for metric in TARGETS[target][1]:
            curves[f"{target}/{metric}"] = collect.collect(
                run_dirs(workdir, target), metric, "frozen", split_examples=examples_of)
    sections, results = [], {"curves": {}}
    for name, points in curves.items():
        fits = collect.fits_of(points)
        transfer = name.split("/")[0] in TARGETS
        sections.append(f"### {name}\n\n" + collect.markdown(
            points, fits, name.rsplit("/", 1)[-1], "frozen" if transfer else None,
            "examples"))
        if plots:
            png = name.replace("/", "_").replace(", ", "_").replace(" ", "_") + ".png"
            names = PROBE_NAMES if name.startswith("probes/") else NAMES
            collect.plot(points, fits, fs.join(workdir, png), name, None, "examples",
                         names=names if transfer else None)
        results["curves"][name] = [dict(run=fs.basename(p.workdir), frozen=p.curve,
                                        seed=p.seed, examples=p.examples, step=p.step,
                                        value=p.value, lo=p.lo, hi=p.hi) for p in points]
    table = findings.table(curves, NAMES)
    text = "## Findings\n\n" + table + "\n## Curves\n\n" + "\n".join(sections)
    return text, results


def report_again(workdir: str) -> str:
    """results.md rendered again from the committed files alone."""
    results = read_json(fs.join(workdir, "results.json"))
    text, _ = render(workdir, fs.join(workdir, "pretrain"), results["targets"],
                     results["sizes"])
    with fs.open(fs.join(workdir, "results.md"), "w") as f:
        f.write(text)
    return text


def transfer_all(workdir: str, run: str, targets: Sequence[str], size: str,
                 data_dir: str | None, total_steps: Mapping[str, int],
                 seconds: dict[str, float]) -> None:
    """Every transfer of one pre-training run not finished yet. A finished one has a
    DONE file (as a sweep's runs): its metrics are all the report reads, so a
    study restored from its committed files needs no checkpoint for it."""
    checkpoint = None
    seed = int(read_json(fs.join(run, "config.json"))["seed"])
    for target in targets:
        for setting in TARGETS[target][2]:
            out = fs.join(workdir, target, setting, fs.basename(run))
            if fs.exists(fs.join(out, sweep.DONE)):
                continue
            checkpoint = checkpoint or latest_checkpoint(run)
            config = transfer_config(target, setting, size, data_dir, checkpoint, seed,
                                     total_steps.get(target))
            train_run("transfer vs data", f"{target}/{setting}/{fs.basename(run)}",
                      config, out, seconds)
            with fs.open(fs.join(out, sweep.DONE), "w") as f:
                f.write("finished; the study does not run it again.\n")


def run_study(workdir: str, data_dir: str | None, size: str, targets: Sequence[str],
              fractions: Sequence[str], seeds: Sequence[str],
              total_steps: Mapping[str, int] | None = None) -> str:
    """`total_steps`: target -> its transfer runs' steps, where not the config's."""
    total_steps = dict(total_steps or {})
    start, seconds = time.time(), {}
    pretrain = fs.join(workdir, "pretrain")
    config_file = data_size.CONFIG + (":tiny" if size == "tiny" else "")
    runs_of = lambda regime, steps: data_size.study_runs(pretrain, fractions, seeds, 18, 50,
                                                         [], regime, steps)

    def pretrain_then_transfer(config: ml_collections.ConfigDict, run: str) -> None:
        # Each pre-training run's transfers follow it, so a study stopped at any
        # point keeps whole units (a run and its transfers), committable without
        # checkpoints; the sweep marks the run done only after them.
        from big_vision_like import trainer

        trainer.train(config, run)
        if fs.basename(fs.parent(run)) == "epochs":
            transfer_all(workdir, run, targets, size, data_dir, total_steps, seconds)

    # The compute-matched runs are a control for the probes, not transferred.
    data_size.run_study(pretrain, data_dir, runs_of, ["epochs", "steps"],
                        max(map(float, fractions)), pretrain_then_transfer,
                        config_file=config_file)
    for run in pretrained_runs(pretrain):  # finished before, or new targets
        transfer_all(workdir, run, targets, size, data_dir, total_steps, seconds)
    sizes = read_json(fs.join(pretrain, "results.json"))["sizes"]
    text, results = render(workdir, pretrain, targets, sizes, plots=True)
    seconds["total"] = round(time.time() - start, 1)
    results.update(targets=list(targets), sizes=sizes, size=size, seconds=seconds)
    with fs.open(fs.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with fs.open(fs.join(workdir, "results.md"), "w") as f:
        f.write(text)
    return text


def parse_steps(text: str, targets: Sequence[str]) -> dict[str, int]:
    """'150' (every target) or 'detection=150,segmentation=300' -> target -> steps."""
    if not text:
        return {}
    if "=" not in text:
        return {t: int(text) for t in targets}
    steps = {k: int(v) for k, v in (item.split("=", 1) for item in text.split(","))}
    unknown = set(steps) - set(TARGETS)
    if unknown:
        raise ValueError(f"--total_steps: unknown targets {sorted(unknown)}; known: "
                         f"{list(TARGETS)}")
    return steps


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="The study's folder.")
    add_report_flags(p)
    p.add_argument("--data_dir", default=None, help="TFDS data_dir (datasets are generated).")
    p.add_argument("--size", default="demo", choices=("demo", "tiny"),
                   help="demo: 64 px; tiny: 32 px and a few steps (what the tests run).")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help=f"Comma-separated, of {', '.join(TARGETS)}.")
    p.add_argument("--fractions", default="0.0625,0.125,0.25,0.5",
                   help="Pre-training subset fractions, comma-separated.")
    p.add_argument("--seeds", default="0,1,2", help="Seeds, comma-separated.")
    p.add_argument("--total_steps", default="",
                   help="Transfer runs' steps: N for every target, or target=N,... "
                        "(default: each config's; the probes train none).")
    args = p.parse_args(argv)
    if args.report_only:
        print(report_tables(args.workdir, report_again, args.readme))
        return
    split = lambda text: [f for f in text.split(",") if f]
    unknown = set(split(args.targets)) - set(TARGETS)
    if unknown:
        p.error(f"unknown targets {sorted(unknown)}; known: {list(TARGETS)}")
    try:
        steps = parse_steps(args.total_steps, split(args.targets))
    except ValueError as e:
        p.error(str(e))
    show_training_progress()
    print(run_study(args.workdir, args.data_dir, args.size, split(args.targets),
                    split(args.fractions), split(args.seeds), steps))


if __name__ == "__main__":
    main()
