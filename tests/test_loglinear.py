"""The log-linear fit, and collect.py on workdirs written here."""

import json
import os

import numpy as np
import pytest
import scipy.stats
from PIL import Image
from sklearn.metrics import r2_score

from big_vision_like.tools import collect, curve_forms
from big_vision_like.tools.loglinear import fit_log_linear


def test_exact_points_give_their_line():
    examples = [1e3, 3e3, 1e4, 3e4, 1e5, 3e5]
    values = [0.25 + 0.07 * np.log10(n) for n in examples]
    fit = fit_log_linear(examples, values)
    assert fit.b == pytest.approx(0.07, abs=1e-9)
    assert fit.a == pytest.approx(0.25, abs=1e-9)
    assert fit.r2 == 1.0
    assert fit(1e6) == pytest.approx(0.25 + 0.07 * 6, abs=1e-9)


def test_noisy_points_match_polyfit_and_sklearn_r2():
    rng = np.random.default_rng(0)
    examples = np.geomspace(1e4, 3e8, 12)
    values = 10 + 3.5 * np.log10(examples) + rng.normal(0, 1.0, examples.size)
    fit = fit_log_linear(examples, values)
    b, a = np.polyfit(np.log10(examples), values, 1)
    assert fit.b == pytest.approx(b, rel=1e-9)
    assert fit.a == pytest.approx(a, rel=1e-9)
    assert fit.r2 == pytest.approx(r2_score(values, a + b * np.log10(examples)), rel=1e-9)
    assert 0 < fit.r2 < 1


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="two different data sizes"):
        fit_log_linear([100, 100], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        fit_log_linear([0, 100], [1.0, 2.0])
    with pytest.raises(ValueError, match="one each"):
        fit_log_linear([10, 100], [1.0])


# A made-up Figure 4: two depths, three data sizes each, exactly log-linear.
SPLIT = 20_000
FRACTIONS = (0.1, 0.3, 1.0)
LINES = {50: (0.05, 0.04), 101: (0.02, 0.06)}  # depth -> (a, b)


def _write_run(path, depth, fraction, final, extra=None, rows=None):
    os.makedirs(path)
    config = {"model": {"depth": depth}, "init_from": {"checkpoint": None},
              "input": {"data": {"name": "made_up", "split": "train",
                                 "subset_fraction": fraction}}}
    config.update(extra or {})
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    rows = [{"step": 100, "fasteval/map@100": final + 0.5, "train/loss": 3.0},
            {"step": 200, "fasteval/map@100": final - 0.01, "train/loss": 2.0},
            {"step": 300, "fasteval/map@100": final, "train/loss": 2.5}]
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


@pytest.fixture
def figure4_runs(tmp_path):
    dirs, expected = [], {}
    for depth, (a, b) in LINES.items():
        for fraction in FRACTIONS:
            path = str(tmp_path / f"d{depth}_f{fraction}")
            value = a + b * np.log10(fraction * SPLIT)
            _write_run(path, depth, fraction, value)
            dirs.append(path)
            expected[path] = value
    return dirs, expected


def test_collect_table_fit_and_png(figure4_runs, tmp_path):
    dirs, expected = figure4_runs
    points = collect.collect(dirs, "fasteval/map@100", "model.depth", split_examples=SPLIT)
    assert {p.workdir: p.value for p in points} == pytest.approx(expected)
    assert sorted({p.examples for p in points}) == pytest.approx(
        [f * SPLIT for f in FRACTIONS])
    fits = collect.fits_of(points)
    for depth, (a, b) in LINES.items():
        assert fits[depth].b == pytest.approx(b, abs=1e-9)
        assert fits[depth].a == pytest.approx(a, abs=1e-9)
        assert fits[depth].r2 == pytest.approx(1.0)
    # On the subset fraction the slope is the same; only the intercept moves.
    by_fraction = collect.fits_of(points, "fraction")
    assert by_fraction[50].b == pytest.approx(LINES[50][1], abs=1e-9)
    assert by_fraction[50].a == pytest.approx(LINES[50][0] + LINES[50][1] * np.log10(SPLIT))

    md, png = tmp_path / "out.md", tmp_path / "out.png"
    collect.main([*dirs, "--metric", "fasteval/map@100", "--curve", "model.depth",
                  "--split_examples", str(SPLIT), "--markdown", str(md), "--png", str(png)])
    text = md.read_text()
    size_rows = [line for line in text.splitlines()
                 if line.count("|") == 10 and line[2].isdigit()]
    assert len(size_rows) == 6  # one per depth and size
    value = 0.02 + 0.06 * np.log10(6000)
    assert f"| 101 | 0.3 | 6,000 | 300 | 1 | {value:.4f} | 0.0000 | – | – |" in text
    # An exact line: the slope's interval is the slope itself.
    assert f"| 101 | 3 | {0.02:.4f} | {0.06:+.4f} | [0.0600, 0.0600] | 1.0000 |" in text
    assert "| 101 | log-linear | " in text and "| 101 | linear | " in text
    with Image.open(png) as image:
        assert image.size == (640, 480)


def test_best_and_step(figure4_runs):
    path = figure4_runs[0][0]
    rows = collect.read_metrics(path)
    final = figure4_runs[1][path]
    assert collect.metric_at(rows, "fasteval/map@100", "final", path) == (300, final)
    assert collect.metric_at(rows, "fasteval/map@100", "best", path) == (100, final + 0.5)
    assert collect.metric_at(rows, "fasteval/map@100", "step=200", path) == (200, final - 0.01)
    assert collect.metric_at(rows, "train/loss", "best", path) == (200, 2.0)  # lowest
    with pytest.raises(ValueError, match=r"at steps \[100, 200, 300\]"):
        collect.metric_at(rows, "fasteval/map@100", "step=250", path)
    with pytest.raises(ValueError, match="it has"):
        collect.metric_at(rows, "fasteval/map@10", "final", path)


def test_at_epoch_is_the_step_the_trainer_makes_of_it(tmp_path):
    """0.1 of 20,000 examples at batch 100: an epoch is 20 steps, 5 epochs step
    100 and 10 epochs step 200; 5.01 epochs round up to step 101, never logged."""
    path = str(tmp_path / "run")
    _write_run(path, 18, 0.1, 0.3, extra={"batch_size": 100})
    at = lambda e: collect.collect([path], "fasteval/map@100", at=f"epoch={e}",
                                   split_examples=SPLIT)[0]
    assert (at(5).step, at(5).value) == (100, pytest.approx(0.8))
    assert (at(10).step, at(10).value) == (200, pytest.approx(0.29))
    with pytest.raises(ValueError, match="not logged at step 101"):
        at(5.01)


def test_transfer_run_counts_its_pretraining_data(tmp_path):
    pre = str(tmp_path / "pretrain")
    _write_run(pre, 50, 0.25, 0.3)
    fine = str(tmp_path / "coco")
    _write_run(fine, 50, None, 0.4,
               {"init_from": {"checkpoint": os.path.join(pre, "checkpoints", "300")}})
    [point] = collect.collect([fine], "fasteval/map@100", split_examples=SPLIT)
    assert (point.fraction, point.examples) == (0.25, 0.25 * SPLIT)
    [own] = collect.collect([fine], "fasteval/map@100", split_examples=SPLIT,
                            follow_init_from=False)
    assert own.examples == SPLIT
    os.remove(os.path.join(pre, "config.json"))
    with pytest.raises(ValueError, match="nofollow_init_from"):
        collect.collect([fine], "fasteval/map@100", split_examples=SPLIT)


def test_split_size_comes_from_the_tfds_builder(tiny_source, tmp_path):
    from input_pipeline import subsets
    from tests.helpers import data_dir_of

    path = str(tmp_path / "run")
    _write_run(path, 18, 0.5, 0.1)
    config = json.loads(open(os.path.join(path, "config.json")).read())
    config["input"]["data"].update(name="synthetic_jft/tiny", data_dir=data_dir_of(tiny_source))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    [point] = collect.collect([path], "fasteval/map@100")
    # The subset's exact size (test_subsets checks it against the records read).
    total = tiny_source.info.splits["train"].num_examples
    assert point.examples == subsets.subset_size(tiny_source, "train", 0.5, 0)
    assert point.examples != 0.5 * total and abs(point.examples - 0.5 * total) < 4 * total**.5
    config["input"]["data"]["subset_fraction"] = None
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    assert collect.collect([path], "fasteval/map@100")[0].examples == total


def test_a_sweep_folder_stands_for_its_started_runs(figure4_runs, tmp_path):
    dirs = [*figure4_runs[0][:2], str(tmp_path / "not_started")]
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": [{"workdir": d} for d in dirs]}))
    assert collect.workdirs_of([str(tmp_path), figure4_runs[0][3]]) == [
        *figure4_runs[0][:2], figure4_runs[0][3]]


def test_seeds_give_a_mean_a_spread_and_intervals_against_scipy(tmp_path):
    rng = np.random.default_rng(0)
    dirs, values = [], {}
    for fraction in (*FRACTIONS, 0.6):
        for seed in range(3):
            path = str(tmp_path / f"f{fraction}_s{seed}")
            value = 0.1 + 0.05 * np.log10(fraction * SPLIT) + rng.normal(0, 0.01)
            _write_run(path, 50, fraction, value, {"seed": seed})
            with open(os.path.join(path, "metrics.jsonl"), "a") as f:
                f.write(json.dumps({"step": 300, "fasteval/map@100_ci95_lo": value - 0.02,
                                    "fasteval/map@100_ci95_hi": value + 0.03}) + "\n")
            dirs.append(path)
            values.setdefault(fraction, []).append(value)
    points = collect.collect(dirs, "fasteval/map@100", "model.depth", split_examples=SPLIT)
    assert sorted(p.seed for p in points) == [0] * 4 + [1] * 4 + [2] * 4
    for g in collect.summaries(points):
        want = values[g.fraction]
        assert g.mean == pytest.approx(np.mean(want)) and g.std == pytest.approx(
            np.std(want, ddof=1))
        lo, hi = scipy.stats.t.interval(0.95, 2, np.mean(want), scipy.stats.sem(want))
        assert (g.lo, g.hi) == pytest.approx((lo, hi))
        assert (g.images_lo, g.images_hi) == pytest.approx((g.mean - 0.02, g.mean + 0.03))
    # The slope's interval from every run, against scipy's regression standard error.
    fit = collect.fits_of(points)[50]
    x = np.log10([p.examples for p in points])
    ref = scipy.stats.linregress(x, [p.value for p in points])
    half = scipy.stats.t.ppf(0.975, len(x) - 2) * ref.stderr
    assert (fit.b, fit.b_lo, fit.b_hi) == pytest.approx(
        (ref.slope, ref.slope - half, ref.slope + half))
    assert fit.b_lo < 0.05 < fit.b_hi


def test_each_form_predicts_the_held_out_size_of_its_own_law():
    x = np.repeat([1e3, 4e3, 1.6e4, 6.4e4], 3)
    laws = {"log-linear": 0.1 + 0.05 * np.log10(x), "linear": 0.1 + 2e-6 * x,
            "power law": 0.02 * x ** 0.3, "saturating": 0.9 - 0.3 * (x / 1e3) ** -0.5}
    noise = np.tile([-1e-4, 0.0, 1e-4], 4)  # a tiny spread: an interval to be within
    for law, y in laws.items():
        got = {h.form: h for h in curve_forms.held_out_predictions(x, y + noise)}
        assert got[law].within, (law, got[law])
        assert abs(got[law].error) < 1e-3
        others = [h for h in got.values() if h.form != law and np.isfinite(h.predicted)]
        assert len(others) >= 2
        assert all(abs(h.error) > abs(got[law].error) for h in others), (law, got)
    with pytest.raises(ValueError, match="at least 3 data sizes"):
        curve_forms.held_out_predictions([1e3, 1e3, 2e3], [0.1, 0.2, 0.3])
