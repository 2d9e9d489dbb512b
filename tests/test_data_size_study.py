"""The miniature data-size study's driver: its runs, and its report from them."""

import json
import os

import numpy as np
import pytest

from big_vision_like.tools import sweep
from input_pipeline import subsets
from studies.data_size import run as study
from tests.helpers import data_dir_of


def test_runs_span_8x_and_the_second_depth_two_sizes(tmp_path):
    runs = study.study_runs(str(tmp_path), ["0.125", "0.25", "0.5", "1.0"], 18, 50,
                            ["0.125", "0.5"])
    assert [r.name for r in runs] == [
        "depth=18,subset_fraction=0.125", "depth=18,subset_fraction=0.25",
        "depth=18,subset_fraction=0.5", "depth=18,subset_fraction=1.0",
        "depth=50,subset_fraction=0.125", "depth=50,subset_fraction=0.5"]
    assert runs[4].overrides == {"model.depth": 50, "input.data.subset_fraction": 0.125}
    # Every run's config builds from the study's config file.
    sweep.check_configs(study.CONFIG, [], runs)


def test_report_fits_each_depth(tiny_source, tmp_path):
    """A fake trainer writes what a run would (config.json, metrics.jsonl), each
    metric exactly log-linear in the subset's size; the report recovers the lines."""
    lines = {18: (0.01, 0.05), 50: (0.03, 0.04)}  # depth -> (a, b)
    data_dir = data_dir_of(tiny_source)

    def fake_train(config, workdir):
        config.input.data.name = "synthetic_jft/tiny"
        n = subsets.subset_size(tiny_source, "train", config.input.data.subset_fraction, 0)
        a, b = lines[config.model.depth]
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json())
        row = {"step": 7, **{m: a + i + b * np.log10(n) for i, m in enumerate(study.METRICS)}}
        with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
            f.write(json.dumps(row) + "\n")

    runs = study.study_runs(str(tmp_path), ["0.25", "0.5", "1.0"], 18, 50, ["0.25", "1.0"])
    text = study.run_study(str(tmp_path), data_dir, runs, fake_train)
    got = json.loads((tmp_path / "results.json").read_text())
    for i, metric in enumerate(study.METRICS):
        fits = got["metrics"][metric]["fits"]
        for depth, (a, b) in lines.items():
            assert fits[str(depth)]["b"] == pytest.approx(b, abs=1e-9)
            assert fits[str(depth)]["a"] == pytest.approx(a + i, abs=1e-9)
            assert fits[str(depth)]["r2"] == pytest.approx(1.0)
        assert (tmp_path / (metric.replace("/", "_") + ".png")).stat().st_size > 0
    assert "### fasteval/map@100" in text and (tmp_path / "results.md").exists()
    assert all((tmp_path / r.name / sweep.DONE).exists() for r in runs)
