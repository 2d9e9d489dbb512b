"""The headline command at its tiny size: pre-training at two data sizes, transfer
(fine-tuned and frozen), the evaluation-only probes, the compute-matched control,
the curves and the findings table, end to end. Detection and digits fine-tuning
are left out here for time: their transfer runs are the dense and transfer
studies' (tests/test_transfer_study.py), and this study builds their configs
like the others' (checked below)."""

import json
import shutil

import pytest

from big_vision_like.config.validate import validate
from studies.transfer_vs_data import run as study
from tests.helpers import data_dir_of


@pytest.mark.slow
def test_the_tiny_headline_study_runs_end_to_end_and_reports_again(tiny_source, tmp_path):
    workdir = tmp_path / "study"
    args = ["--workdir", str(workdir), "--data_dir", data_dir_of(tiny_source),
            "--size", "tiny", "--fractions", "0.25,0.5", "--seeds", "0",
            "--targets", "segmentation,probes", "--total_steps", "1"]
    study.main(args)
    results = json.loads((workdir / "results.json").read_text())
    for target in ("segmentation", "probes"):
        _, metrics, settings = study.TARGETS[target]
        points = results["curves"][f"{target}/{metrics[-1]}"]
        # One run per pre-training size and setting, each started from its checkpoint.
        assert len(points) == 2 * len(settings)
        assert len({p["examples"] for p in points}) == 2
        assert all(p["lo"] is not None and p["lo"] <= p["value"] <= p["hi"] for p in points)
        assert (workdir / f"{target}_{metrics[-1].replace('/', '_')}.png").stat().st_size > 0
    text = (workdir / "results.md").read_text()
    assert text.startswith("## Findings\n\n| the paper | the miniature | verdict |")
    assert "Fig. 6: segmentation mIoU grows logarithmically" in text
    assert "Fig. 4: detection" not in text  # a target not run is not reported
    assert "Control for the probe: a probe on conv4's features" in text
    # The compute-matched control trains every size the largest one's steps.
    steps = {p["step"] for p in results["curves"][
        "pre-training, compute-matched/digits_probe/accuracy"]}
    assert len(steps) == 1
    # The report renders again from the files alone.
    assert study.report_again(str(workdir)) == text
    # Without its checkpoints (as committed), the study has nothing left to train.
    for checkpoints in workdir.glob("**/checkpoints"):
        shutil.rmtree(checkpoints)
    study.main(args)
    assert not list(workdir.glob("**/checkpoints"))
    assert (workdir / "results.md").read_text() == text


@pytest.mark.parametrize("target", list(study.TARGETS))
def test_each_transfer_config_starts_from_its_checkpoint_with_its_seed(target, tmp_path):
    for setting in study.TARGETS[target][2]:
        c = study.transfer_config(target, setting, "tiny", None, str(tmp_path / "ckpt"), 2, 5)
        steps = 0 if target == "probes" else 5  # probes evaluate the checkpoint as it is
        assert (c.init_from.checkpoint, c.seed, c.total_steps) == (
            str(tmp_path / "ckpt"), 2, steps)
        assert c.frozen == study.SETTINGS[setting]
        # Exactly the metrics the study reads, each with its interval.
        assert sorted(f"{e}/" for e in c.evals) == sorted(
            m.split("/")[0] + "/" for m in study.TARGETS[target][1])
        assert all(ev.bootstrap > 0 for ev in c.evals.values())
        validate(c, num_devices=8)


def test_a_shorter_detection_run_drops_its_rate_at_the_same_share():
    full = study.transfer_config("detection", "finetune", "demo", None, "ckpt", 0)
    short = study.transfer_config("detection", "finetune", "demo", None, "ckpt", 0, 100)
    (drop,) = full.schedule.boundaries_steps
    assert short.schedule.boundaries_steps == (round(drop * 100 / full.total_steps),)


def test_transfer_steps_for_every_target_or_per_target():
    assert study.parse_steps("", ["digits"]) == {}
    assert study.parse_steps("7", ["digits", "probes"]) == {"digits": 7, "probes": 7}
    assert study.parse_steps("detection=150,digits=300", ["digits"]) == {
        "detection": 150, "digits": 300}
    with pytest.raises(ValueError, match="unknown targets"):
        study.parse_steps("depth=3", ["digits"])

