"""What pre-training buys on dense tasks, offline: segmentation, pose, detection.

    python -m studies.dense.run --workdir workdirs/dense_study \
        --data_dir data/tfds [--pretrained workdirs/demo/checkpoints/1500] \
        [--targets segmentation,pose,detection] [--total_steps N]

For each target, with the same steps, schedule and seed, trains
  - from a random initialisation (`scratch`),
  - from the pre-trained ResNet body, all of it fine-tuned (`finetune`;
    the task's new layers start fresh, as `init_from.skip` says),
  - for detection also from the pre-trained body with conv1-4 frozen
    (`frozen`, Figure 4's red curve),
and reports the target's test metrics. Targets (paper sections 5.2-5.4,
on synthetic_jft so they run anywhere):
  segmentation  configs/transfer/deeplab_synthetic.py: DeepLab-ASPP-L,
                background + 4 shape families, mean IoU on `test`;
  pose          configs/transfer/pose_synthetic.py: 5 keypoints per object,
                G-RMI heatmaps + offsets, keypoint AP on `test`;
  detection     configs/transfer/faster_rcnn_synthetic.py: Faster R-CNN, the
                4 shape families, COCO box AP on `test`; the table also gives
                the AP of random boxes on the same images;
  detection_heldout  the same detector on one family only (star), from a
                pre-training that never labels it (studies/dense/
                heldout_pretrain.py, trained into <workdir>/pretrain_heldout):
                the other targets' classes are ancestors of pre-training labels.
The pre-trained checkpoint is the one given, else configs/demo.py trained
into <workdir>/pretrain (as the classification transfer study does). Every
run is an ordinary trainer run in <workdir>/<target>/<setting>; a finished
run is not repeated. Writes results.md and results.json into the workdir.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import ml_collections

from big_vision_like import filesystem as fs
from configs.transfer import deeplab_synthetic, faster_rcnn_synthetic, pose_synthetic
from configs.transfer.detection_common import FROZEN_CONV1_4
from studies.common import (
    latest_checkpoint,
    match_model,
    pretrained_checkpoint,
    study_main,
    train_run,
)

TWO = ("scratch", "finetune")
# target -> (config module, metrics reported (the first is the headline), settings)
TARGETS = {
    "segmentation": (deeplab_synthetic, ("miou", "pixel_accuracy"), TWO),
    "pose": (pose_synthetic, ("AP", "AP50", "AP75", "AR"), TWO),
    "detection": (faster_rcnn_synthetic, ("AP", "AP50", "AP75", "AR100"),
                  (*TWO, "frozen")),
    # Detecting a family pre-training never labels (studies/dense/heldout_pretrain.py),
    # fine-tuned from that pre-training: the other targets' classes are ancestors of
    # the pre-training labels.
    "detection_heldout": (faster_rcnn_synthetic, ("AP", "AP50", "AP75", "AR100"), TWO),
}
# Targets with a config option of their own, and a pre-training of their own.
OPTIONS = {"detection_heldout": "heldout"}
SIZES = ("demo", "tiny")
SETTINGS = {"scratch": "random initialisation",
            "finetune": "pre-trained body, fine-tuned",
            "frozen": "pre-trained body, conv1-4 frozen"}
CHANCE = "random boxes (chance level, same images)"


def run_config(target: str, setting: str, size: str, data_dir: str | None,
               checkpoint: str, total_steps: int | None = None) -> ml_collections.ConfigDict:
    option = f",{OPTIONS[target]}" if target in OPTIONS else ""
    c = TARGETS[target][0].get_config(size + option)
    c.input.data.data_dir = data_dir
    match_model(c, checkpoint, keys=("depth", "width"))  # the task keeps its model name
    if total_steps is not None:
        c.total_steps = total_steps
    c.ckpt_steps = c.total_steps
    if setting in ("finetune", "frozen"):
        c.init_from.checkpoint = checkpoint
        if setting == "frozen":
            c.frozen = FROZEN_CONV1_4
    elif setting != "scratch":
        raise ValueError(f"unknown setting {setting!r}; known: {list(SETTINGS)}")
    return c


def heldout_checkpoint(workdir: str, data_dir: str | None, size: str,
                       seconds: dict[str, float]) -> str:
    """The last checkpoint of studies/dense/heldout_pretrain.py, trained into
    <workdir>/pretrain_heldout (resumed; a finished run is not repeated)."""
    from studies.dense import heldout_pretrain

    config = heldout_pretrain.get_config(size)
    config.input.data.data_dir = data_dir
    run_dir = fs.join(workdir, "pretrain_heldout")
    train_run("dense study", "pretrain_heldout", config, run_dir, seconds)
    return latest_checkpoint(run_dir)


def markdown(results: dict[str, Any]) -> str:
    lines = []
    # In TARGETS' order: results.json is written with sorted keys.
    for target in (t for t in TARGETS if t in results["targets"]):
        res, metrics = results["targets"][target], TARGETS[target][1]
        lines += [f"| {target} ({res['steps']} steps) | " + " | ".join(metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
        for setting in TARGETS[target][2]:
            name, got = SETTINGS[setting], res["test"].get(setting, {})
            lines.append(f"| {name} | " + " | ".join(
                f"{got[m]:.3f}" if m in got else "–" for m in metrics) + " |")
        if res.get("chance"):
            lines.append(f"| {CHANCE} | " + " | ".join(
                f"{res['chance'][m]:.3f}" if m in res["chance"] else "–" for m in metrics)
                + " |")
        lines.append("")
    return "\n".join(lines)


def report_again(workdir: str) -> str:
    """results.md of a finished study, rendered again from its results.json alone."""
    with fs.open(fs.join(workdir, "results.json")) as f:
        text = markdown(json.load(f))
    with fs.open(fs.join(workdir, "results.md"), "w") as f:
        f.write(text)
    return text


def run_study(workdir: str, data_dir: str | None, pretrained: str | None = None,
              size: str = "demo", targets: Sequence[str] = tuple(TARGETS),
              total_steps: int | None = None) -> dict[str, Any]:
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise ValueError(f"unknown targets {unknown}; known: {list(TARGETS)}")
    if size != "demo" and not pretrained:
        raise ValueError(f"size {size!r}: give a checkpoint pre-trained at that size.")
    start = time.time()
    fs.makedirs(workdir)
    checkpoint = pretrained_checkpoint(workdir, data_dir, pretrained)
    results: dict[str, Any] = {"pretrained": checkpoint, "size": size, "targets": {},
                               "seconds": {}}
    for target in targets:
        res: dict[str, Any] = {"test": {}}
        start_from = checkpoint
        if target in OPTIONS:
            start_from = heldout_checkpoint(workdir, data_dir, size, results["seconds"])
            res["pretrained"] = start_from
        for setting in TARGETS[target][2]:
            config = run_config(target, setting, size, data_dir, start_from, total_steps)
            got = train_run("dense study", f"{target}/{setting}", config,
                            fs.join(workdir, target, setting), results["seconds"])
            res["test"][setting] = {m: got[f"test/{m}"] for m in TARGETS[target][1]
                                    if f"test/{m}" in got}
            res["steps"] = int(config.total_steps)
            chance = {m: got[f"random_boxes/{m}"] for m in TARGETS[target][1]
                      if f"random_boxes/{m}" in got}
            if chance:  # the same for every setting: it ignores the model
                res["chance"] = chance
        results["targets"][target] = res
    results["seconds"]["total"] = round(time.time() - start, 1)
    with fs.open(fs.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    print(report_again(workdir), flush=True)
    return results


if __name__ == "__main__":
    study_main(run_study, TARGETS, SIZES, report_again)
