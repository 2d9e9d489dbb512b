"""The miniature data-size study's driver: its runs, and its report from them."""

import json
import os

import numpy as np
import pytest

from big_vision_like.tools import sweep
from input_pipeline import subsets
from studies.data_size import run as study
from tests.helpers import data_dir_of


def test_runs_span_8x_with_seeds_in_two_regimes(tmp_path):
    runs = study.study_runs(str(tmp_path), ["0.125", "0.25", "0.5", "1.0"], ["0", "1"], 18,
                            50, ["0.125", "0.5"])
    assert [r.name for r in runs[:3]] == [
        "depth=18,subset_fraction=0.125,seed=0", "depth=18,subset_fraction=0.125,seed=1",
        "depth=18,subset_fraction=0.25,seed=0"]
    assert len(runs) == 4 * 2 + 2 * 2
    assert runs[8].overrides == {"model.depth": 50, "input.data.subset_fraction": 0.125,
                                 "seed": 0}
    assert all(r.workdir.startswith(str(tmp_path / "epochs")) for r in runs)
    # Compute-matched: the largest fraction is the epoch regime's run, not run twice.
    steps = study.study_runs(str(tmp_path), ["0.125", "0.25", "0.5", "1.0"], ["0", "1"], 18,
                             50, [], "steps", 1563)
    assert len(steps) == 3 * 2 and {r.overrides["total_steps"] for r in steps} == {1563}
    assert 1.0 not in {r.overrides["input.data.subset_fraction"] for r in steps}
    # Every run's config builds from the study's config file.
    sweep.check_configs(study.CONFIG, [], runs + steps)


def test_report_gives_each_regime_its_fit_over_seeds(tiny_source, tmp_path):
    """A fake trainer writes what a run would (config.json, metrics.jsonl with a
    bootstrap interval), each metric log-linear in the subset's size plus a seed
    offset that cancels over the seeds; the report recovers the lines per regime."""
    lines = {"epochs": (0.01, 0.05), "steps": (0.03, 0.04)}  # regime -> (a, b)
    data_dir = data_dir_of(tiny_source)
    steps_seen = set()

    def fake_train(config, workdir):
        n = subsets.subset_size(tiny_source, "train", config.input.data.subset_fraction, 0)
        regime = "steps" if "/steps/" in workdir else "epochs"
        if regime == "steps":
            steps_seen.add(config.total_steps)
        a, b = lines[regime]
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json())
        noise = (config.seed - 1) * 0.01  # seeds 0, 1, 2: -0.01, 0, +0.01
        row = {"step": 7}
        for i, m in enumerate(study.METRICS):
            row[m] = a + i + b * np.log10(n) + noise
            row[m + "_ci95_lo"], row[m + "_ci95_hi"] = row[m] - 0.1, row[m] + 0.1
        with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
            f.write(json.dumps(row) + "\n")

    fractions = ["0.25", "0.5", "1.0"]
    runs_of = lambda regime, steps: study.study_runs(
        str(tmp_path), fractions, ["0", "1", "2"], 18, 50, [], regime, steps)
    text = study.run_study(str(tmp_path), data_dir, runs_of, ["epochs", "steps"], 1.0,
                           fake_train, ["--config.input.data.name=synthetic_jft/tiny"])
    # The compute-matched runs train the full set's 4 epochs of steps.
    n = tiny_source.num_examples("train")
    assert steps_seen == {-(-4 * n // 128)}
    got = json.loads((tmp_path / "results.json").read_text())
    for regime, (a, b) in lines.items():
        for i, metric in enumerate(study.METRICS):
            fit = got["metrics"][regime][metric]["fits"]["18"]
            # The steps regime's largest size is the epoch regime's run, on its line.
            if regime == "epochs":
                assert fit["b"] == pytest.approx(b, abs=1e-9)
                assert fit["a"] == pytest.approx(a + i, abs=1e-9)
                assert fit["b_lo"] < b < fit["b_hi"]
            assert fit["n"] == 9
            assert (tmp_path / f"{regime}_{metric.replace('/', '_')}.png").stat().st_size > 0
    assert "## compute-matched" in text and "| 18 | 1 | " in text
    # Rendered again from the files alone, the report is the same.
    assert study.report_again(str(tmp_path)) == text
    assert all((tmp_path / "epochs" / r.name / sweep.DONE).exists()
               for r in runs_of("epochs", None))
