"""Every schedule against values computed by hand, with and without warmup."""

import numpy as np
import pytest

from big_vision_like.durations import Durations
from big_vision_like.schedules import build_schedule


def values(cfg, total, steps, durations=None):
    fn = build_schedule(cfg, total, durations or Durations(8))
    return [float(fn(s)) for s in steps]


def test_constant_with_warmup():
    got = values({"name": "constant", "base_lr": 0.3, "warmup_steps": 3}, 10, [0, 1, 3, 9])
    np.testing.assert_allclose(got, [0.0, 0.1, 0.3, 0.3], rtol=1e-6)


def test_staircase_counts_its_decays_from_the_end_of_the_warmup():
    cfg = {"name": "staircase", "base_lr": 1.0, "decay_every_steps": 5, "decay_factor": 0.5,
           "warmup_steps": 2}
    got = values(cfg, 20, [1, 2, 6, 7, 11, 12])
    np.testing.assert_allclose(got, [0.5, 1.0, 1.0, 0.5, 0.5, 0.25], rtol=1e-6)


def test_piecewise_factors_multiply_base_lr_from_each_boundary_on():
    cfg = {"name": "piecewise", "base_lr": 0.1, "boundaries_steps": (10, 20),
           "factors": (0.5, 0.01), "warmup_steps": 4}
    got = values(cfg, 30, [0, 2, 4, 9, 10, 19, 20, 29, 40])
    np.testing.assert_allclose(got, [0, 0.05, 0.1, 0.1, 0.05, 0.05, 0.001, 0.001, 0.001],
                               rtol=1e-6)


def test_piecewise_boundaries_in_steps_epochs_or_examples_agree():
    # 40 examples per epoch at batch 8 are 5 steps; 73 and 153 examples round up
    # to 10 and 20 steps.
    durations = Durations(8, examples_per_epoch=40)
    base = {"name": "piecewise", "base_lr": 1.0, "factors": (0.1, 0.01), "warmup_epochs": 1}
    steps = range(32)
    want = values({**base, "boundaries_steps": (10, 20)}, 30, steps, durations)
    assert want[9:12] == pytest.approx([1.0, 0.1, 0.1])
    for unit, bounds in [("epochs", (2, 4)), ("examples", (73, 153))]:
        got = values({**base, f"boundaries_{unit}": bounds}, 30, steps, durations)
        np.testing.assert_array_equal(got, want, err_msg=unit)


def test_piecewise_errors_name_the_problem():
    base = {"name": "piecewise", "base_lr": 1.0}
    with pytest.raises(ValueError, match="2 boundaries need as many factors"):
        values({**base, "boundaries_steps": (5, 10), "factors": (0.1,)}, 20, [0])
    with pytest.raises(ValueError, match="must increase strictly"):
        values({**base, "boundaries_steps": (10, 10), "factors": (0.1, 0.01)}, 20, [0])
    with pytest.raises(ValueError, match="after the warmup"):
        values({**base, "boundaries_steps": (5,), "factors": (0.1,), "warmup_steps": 5},
               20, [0])
    with pytest.raises(ValueError, match=r"boundaries_steps\[0\]=0 is 0 steps"):
        values({**base, "boundaries_steps": (0,), "factors": (0.1,)}, 20, [0])


def test_cosine_with_end_factor():
    cfg = {"name": "cosine", "base_lr": 2.0, "end_factor": 0.1, "warmup_steps": 4}
    # t from the end of warmup over T = 14 - 4 = 10: 2 * (0.1 + 0.9 * (1 + cos(pi t/T)) / 2)
    got = values(cfg, 14, [2, 4, 9, 14, 20])
    np.testing.assert_allclose(got, [1.0, 2.0, 1.1, 0.2, 0.2], rtol=1e-6)


def test_poly_decays_to_end_lr_over_the_steps_after_warmup():
    cfg = {"name": "poly", "base_lr": 1.0, "power": 2.0, "end_lr": 0.1, "warmup_steps": 2}
    # T = 12 - 2; at t = 5: 0.9 * (1 - 5/10)^2 + 0.1.
    got = values(cfg, 12, [0, 1, 2, 7, 12, 20])
    np.testing.assert_allclose(got, [0.0, 0.5, 1.0, 0.325, 0.1, 0.1], rtol=1e-6)


def test_poly_defaults_are_deeplabs():
    got = values({"name": "poly", "base_lr": 2.0}, 10, [0, 5, 10])
    np.testing.assert_allclose(got, [2.0, 2.0 * 0.5 ** 0.9, 0.0], rtol=1e-6)


def test_warmup_in_epochs_and_the_old_signature():
    # build_schedule(cfg, total, batch_size, examples_per_epoch) still works.
    cfg = {"name": "constant", "base_lr": 1.0, "warmup_epochs": 0.5}
    fn = build_schedule(cfg, 100, 10, 100)  # 0.5 epochs = 50 examples = 5 steps
    np.testing.assert_allclose([fn(1), fn(4), fn(5)], [0.2, 0.8, 1.0], rtol=1e-6)


def test_warmup_as_a_fraction_is_the_same_share_of_a_short_and_a_long_run():
    for total, warmup in ((200, 10), (1563, 79), (40, 2)):  # 0.05 of each, rounded up
        cfg = {"name": "cosine", "base_lr": 1.0, "warmup_fraction": 0.05}
        got = values(cfg, total, [warmup - 1, warmup])
        np.testing.assert_allclose(got, [(warmup - 1) / warmup, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match="give warmup_fraction or warmup_epochs, not both"):
        values({"name": "constant", "base_lr": 1.0, "warmup_fraction": 0.1,
                "warmup_epochs": 1.0}, 10, [0], Durations(8, 80))
    with pytest.raises(ValueError, match=r"warmup_fraction=1.5: give a share of the run"):
        values({"name": "constant", "base_lr": 1.0, "warmup_fraction": 1.5}, 10, [0])
