"""The offline transfer study end to end, at tiny size: every run, every table row."""

import json
import os

import numpy as np
import pytest

from big_vision_like import init_from
from studies.transfer import report as study_report
from studies.transfer import run as transfer_study
from tests.helpers import data_dir_of


@pytest.mark.slow
def test_transfer_study_fills_every_row(tiny_source, pretrained_tiny, tmp_path):
    """One target (five trainer runs) keeps the suite's time in bounds; the digits
    dataset has its own tests and the same code path."""
    checkpoint = os.path.join(pretrained_tiny[0], "checkpoints", "8")
    results = transfer_study.run_study(str(tmp_path), data_dir_of(tiny_source), checkpoint,
                                       size="tiny", targets=("object_count",), total_steps=3)
    assert set(results["targets"]) == {"object_count"}
    text = (tmp_path / "results.md").read_text()
    assert json.loads((tmp_path / "results.json").read_text()) == results
    for target, res in results["targets"].items():
        assert set(res["train"]) == set(transfer_study.SETTINGS)
        assert set(res["features"]) == {"pretrained", "random"}
        numbers = [*res["train"].values(), res["majority"]]
        for feats in res["features"].values():
            assert set(feats) == {*study_report.SHOTS, "linear_probe"}
            numbers += feats.values()
        assert all(0 <= x <= 1 for x in numbers), numbers
        for name in (*study_report.SETTING_NAMES.values(),
                     *study_report.FEATURE_NAMES.values()):
            assert f"| {target} | {name} |" in text
    # The frozen run trained the head only, from the pre-trained body.
    report = (tmp_path / "object_count" / "frozen" / "init_from_report.txt").read_text()
    assert "kept fresh (skip pattern): params/head/kernel" in report
    assert "loaded: params/conv5_block2/conv2/kernel" in report
    assert not (tmp_path / "object_count" / "scratch" / "init_from_report.txt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["segmentation", "pose", "detection", "detection_heldout"])
def test_dense_study_compares_scratch_and_pretrained_on_every_target(tiny_source,
                                                                     pretrained_tiny, tmp_path,
                                                                     target):
    """One target per test (two or three trainer runs each): the parts spread over
    the test processes instead of one long test at the end."""
    from studies.dense import run as dense_study

    assert set(dense_study.TARGETS) == {"segmentation", "pose", "detection",
                                        "detection_heldout"}  # all covered
    checkpoint = os.path.join(pretrained_tiny[0], "checkpoints", "8")
    results = dense_study.run_study(str(tmp_path), data_dir_of(tiny_source), checkpoint,
                                    size="tiny", targets=(target,), total_steps=2)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert set(results["targets"]) == {target}
    text = (tmp_path / "results.md").read_text()
    _, metrics, settings = dense_study.TARGETS[target]
    res = results["targets"][target]
    assert res["steps"] == 2 and set(res["test"]) == set(settings)
    for got in res["test"].values():
        assert set(got) == set(metrics) and all(-1 <= v <= 1 for v in got.values())
    assert f"| {target} (2 steps) | " + " | ".join(metrics) + " |" in text
    assert ("chance" in res) == target.startswith("detection")
    assert (dense_study.CHANCE in text) == target.startswith("detection")
    if target == "detection_heldout":  # from a pre-training of its own, not `checkpoint`
        assert "pretrain_heldout" in res["pretrained"]
        report = (tmp_path / target / "finetune" / "init_from_report.txt").read_text()
        assert "pretrain_heldout" in report
        return
    # Fine-tuning started from the pre-trained body; scratch did not.
    report = (tmp_path / target / "finetune" / "init_from_report.txt").read_text()
    assert "loaded: params/conv5_block2/conv2/kernel" in report
    assert not (tmp_path / target / "scratch" / "init_from_report.txt").exists()
    if target != "detection":
        return
    # Detection's frozen setting trained conv5 and the heads, not conv1-4.
    before = init_from.load_variables(checkpoint)
    after = init_from.load_variables(str(tmp_path / "detection" / "frozen" / "checkpoints" / "2"))
    for path in ("params/conv1/kernel", "params/conv4_block2/conv2/kernel",
                 "batch_stats/conv3_block1/bn1/mean"):
        np.testing.assert_array_equal(after[path], before[path], err_msg=path)
    assert not np.array_equal(after["params/conv5_block2/conv2/kernel"],
                              before["params/conv5_block2/conv2/kernel"])


def test_dense_study_refuses_unknown_targets(tmp_path):
    from studies.dense import run as dense_study

    with pytest.raises(ValueError, match="unknown targets"):
        dense_study.run_study(str(tmp_path), None, "unused", targets=("depth",))
    assert not os.listdir(tmp_path)  # refused before anything ran
