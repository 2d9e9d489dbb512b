"""The offline transfer study: what pre-training on synthetic_jft buys on new targets.

    python -m studies.transfer.run --workdir workdirs/transfer_study \
        --data_dir data/tfds [--pretrained workdirs/demo/checkpoints/1500]

Pre-trains the demo ResNet (configs/demo.py) into <workdir>/pretrain unless a
checkpoint is given (an interrupted pre-training resumes). Then, for each
target (configs/transfer/: real handwritten digits; the number of objects
in a synthetic_jft image), with the same steps and schedule, trains
  - from a random initialisation,
  - the head alone on the pre-trained body, frozen conv1-conv5,
  - the whole pre-trained network (full fine-tuning),
and measures few-shot and linear-probe accuracy of the pre-trained and of
random (untrained) features. Every run is an ordinary trainer run in
<workdir>/<target>/<setting>; a finished run is not repeated. Writes
results.md and results.json into the workdir and prints the tables.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

from big_vision_like import filesystem as fs
from configs.transfer import digits, object_count
from configs.transfer.common import FROZEN_BODY
from input_pipeline.keys import MASK_KEY
from studies.common import (
    match_model,
    pretrained_checkpoint,
    study_main,
    train_run,
)
from studies.transfer import report as study_report

TARGETS = {"digits": digits, "object_count": object_count}
SETTINGS = ("scratch", "frozen", "finetune")
SIZES = ("demo", "tiny")


def run_config(target: str, setting: str, size: str, data_dir: str | None,
               checkpoint: str, total_steps: int | None = None) -> ml_collections.ConfigDict:
    """The config of one run. setting: scratch | frozen | finetune (trained, evaluated
    on the test split) or features_pretrained | features_random (no training; few-shot
    and linear probe on the features)."""
    c = TARGETS[target].get_config(size)
    c.input.data.data_dir = data_dir
    match_model(c, checkpoint)
    if total_steps is not None:
        c.total_steps = total_steps
        c.ckpt_steps = total_steps
    if setting in ("frozen", "finetune", "features_pretrained"):
        c.init_from.checkpoint = checkpoint
    if setting == "frozen":
        c.frozen = FROZEN_BODY
    if setting.startswith("features_"):
        c.total_steps = 0
        c.evals = {"fewshot": c.evals.fewshot, "probe": c.evals.probe}
    elif setting in SETTINGS:
        c.evals = {"test": c.evals.test}
    else:
        raise ValueError(f"unknown setting {setting!r}")
    return c


def majority_fraction(config: ml_collections.ConfigDict) -> float:
    """Test accuracy of always answering the most frequent test class."""
    from input_pipeline.pp.base import PPContext
    from input_pipeline.pp.builder import build_preprocess
    from input_pipeline.pp.registry import default_registry
    from input_pipeline.sources.registry import open_source
    from input_pipeline.stream.batches import eval_dataset

    probe = config.evals.probe
    source = open_source(config.input.data.name, config.input.data.data_dir)
    pp = build_preprocess(probe.pp, default_registry(source.pp_ops), PPContext())
    ds, _ = eval_dataset(source, probe.data_test.split, pp, 256)
    labels = np.concatenate([b["label"][b[MASK_KEY]] for b in ds.as_numpy_iterator()])
    return float(np.bincount(labels).max() / len(labels))


def run_study(workdir: str, data_dir: str | None, pretrained: str | None = None,
              size: str = "demo", targets: Sequence[str] = tuple(TARGETS),
              total_steps: int | None = None) -> dict[str, Any]:
    """Runs every run of the study (skipping finished ones) and returns the results."""
    if size != "demo" and not pretrained:
        raise ValueError(f"size {size!r}: give a checkpoint pre-trained at that size "
                         "(only configs/demo.py is pre-trained here).")
    start = time.time()
    fs.makedirs(workdir)
    checkpoint = pretrained_checkpoint(workdir, data_dir, pretrained)
    results: dict[str, Any] = {"pretrained": checkpoint, "size": size, "targets": {},
                               "seconds": {}}
    for target in targets:
        res: dict[str, Any] = {"train": {}, "features": {}}
        for setting in (*SETTINGS, "features_pretrained", "features_random"):
            config = run_config(target, setting, size, data_dir, checkpoint, total_steps)
            got = train_run("transfer study", f"{target}/{setting}", config,
                            fs.join(workdir, target, setting), results["seconds"])
            if setting in SETTINGS:
                res["train"][setting] = got["test/prec@1"]
                res["steps"] = int(config.total_steps)
            else:
                feats = {k.split("/", 1)[1]: v for k, v in got.items()
                         if k.startswith("fewshot/")}
                feats["linear_probe"] = got["probe/accuracy"]
                res["features"][setting.removeprefix("features_")] = feats
        res["majority"] = majority_fraction(
            run_config(target, "features_random", size, data_dir, checkpoint))
        results["targets"][target] = res
    results["seconds"]["total"] = round(time.time() - start, 1)
    print(study_report.write(workdir, results), flush=True)
    return results


if __name__ == "__main__":
    study_main(run_study, TARGETS, SIZES, study_report.report_again)
