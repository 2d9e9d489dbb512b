"""big_vision_like.analysis against independent references: sklearn's AP and
PCA, NumPy counts over the raw training split, the trainer's own final state."""

import os

import jax
import numpy as np
import pytest

from big_vision_like import analysis
from input_pipeline.hierarchy import LabelHierarchy


def test_per_class_ap_matches_sklearn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    labels = rng.random((60, 7)) < 0.3
    labels[:, 3] = False  # no positive: NaN, not 0
    scores = rng.normal(size=labels.shape) + 1.5 * labels
    scores[:10, 1] = 0.25  # ties share one precision, as in sklearn
    ap = analysis.per_class_ap(scores, labels.astype(np.float32))
    assert np.isnan(ap[3])
    for c in (0, 1, 2, 4, 5, 6):
        assert ap[c] == pytest.approx(average_precision_score(labels[:, c], scores[:, c]),
                                      abs=1e-5)


def test_project_2d_matches_sklearn_pca():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    features = rng.normal(size=(80, 12)) @ rng.normal(size=(12, 12)) + 3.0
    ours = analysis.project_2d(features)
    ref = PCA(n_components=2).fit_transform(features)
    for i in range(2):  # a component's sign is arbitrary
        sign = np.sign(ours[:, i] @ ref[:, i])
        np.testing.assert_allclose(sign * ours[:, i], ref[:, i], atol=1e-8)


def test_tail_counts():
    counts = np.array([0, 5, 19, 20, 99, 100, 500, 19])
    assert analysis.tail_counts(counts) == {100: 6, 20: 4}


def test_families_take_the_root_of_the_deepest_label():
    # 0 and 1 are families; 2 < 0, 3 < 2, 4 < 1.
    h = LabelHierarchy.from_pairs([(2, 0), (3, 2), (4, 1)], num_classes=5)
    labels = np.array([[1, 0, 1, 1, 0],    # deepest 3 -> family 0
                       [1, 1, 1, 0, 1],    # 2 and 4 tie at depth 2: lower id 2 -> 0
                       [0, 1, 0, 0, 1],    # 4 -> 1
                       [0, 1, 0, 0, 0],    # a family alone -> itself
                       [0, 0, 0, 0, 0]])   # no label
    np.testing.assert_array_equal(analysis.families(h, labels), [0, 0, 1, 1, -1])


def test_open_workdir_names_a_wrong_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        analysis.open_workdir(str(tmp_path))


@pytest.fixture(scope="module")
def tiny_run(pretrained_tiny, tiny_source):
    from tests.helpers import data_dir_of

    return analysis.open_workdir(pretrained_tiny[0], data_dir_of(tiny_source))


def test_curves_are_the_metrics_rows(tiny_run):
    assert tiny_run.steps == [4, 8]
    keys = analysis.curve_keys(tiny_run)
    assert keys[:2] == ["train/loss", "train/lr"] and "fasteval/map@100" in keys
    fig = analysis.plot_curves(tiny_run, ["train/loss", "fasteval/map@100"])
    rows = [r for r in tiny_run.metrics if "train/loss" in r]
    x, y = fig.axes[0].lines[0].get_data()
    np.testing.assert_array_equal(x, [r["step"] for r in rows])
    np.testing.assert_allclose(y, [r["train/loss"] for r in rows])
    with pytest.raises(ValueError, match="no \\['nope'\\]"):
        analysis.plot_curves(tiny_run, ["nope"])


def test_train_frequency_counts_the_raw_split(tiny_run):
    builder = tiny_run.data.source.builder
    names = builder.info.metadata["class_names"]
    parents = {c: p for c, p in builder.info.metadata["hierarchy"]}  # a tree: one parent
    ref = np.zeros(len(names), np.int64)
    for ex in builder.as_dataset(split="train").as_numpy_iterator():
        carried = set()
        for c in ex["labels"].tolist():
            while c is not None:  # the label and its ancestors, each once per image
                carried.add(c)
                c = parents.get(c)
        ref[list(carried)] += 1
    counts = analysis.train_frequency(tiny_run)
    np.testing.assert_array_equal(counts, ref)
    assert analysis.tail_counts(counts) == {100: int((ref < 100).sum()),
                                            20: int((ref < 20).sum())}


def test_restored_model_predicts_as_the_trained_state(tiny_run, pretrained_tiny):
    _, state = pretrained_tiny
    model = analysis.load_model(tiny_run)
    assert model.step == 8
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    got = analysis.predict(model, images)
    variables = {"params": state.params, **state.model_state}
    forward = jax.jit(lambda v, x: model.task.forward(v, {"image": x}, train=False))
    ref = forward(variables, images)
    n = model.task.num_classes
    np.testing.assert_allclose(got["logits"], np.asarray(ref["logits"])[:, :n], atol=1e-4)
    np.testing.assert_allclose(got["pre_logits"], np.asarray(ref["pre_logits"]), atol=1e-4)
    with pytest.raises(ValueError, match="model takes"):
        analysis.predict(model, images[:, :16])
    with pytest.raises(ValueError, match="no checkpoint at step 5"):
        analysis.load_model(tiny_run, step=5)
    assert os.path.isdir(os.path.join(tiny_run.workdir, "checkpoints", "4"))


def test_a_damaged_latest_checkpoint_is_named_and_the_one_before_is_loaded(
        pretrained_tiny, tiny_source, tmp_path):
    import shutil

    from big_vision_like.checkpointing import CheckpointError
    from tests.helpers import data_dir_of, flip_a_bit_silently

    workdir = tmp_path / "run"
    shutil.copytree(pretrained_tiny[0], workdir)
    flip_a_bit_silently(workdir / "checkpoints" / "8")
    run = analysis.open_workdir(str(workdir), data_dir_of(tiny_source))
    with pytest.warns(UserWarning, match=r"checkpoints/8 is damaged: \S+ differs from the "
                                         r"checksum saved with it.* Loading the checkpoint "
                                         "before it"):
        model = analysis.load_model(run)
    assert model.step == 4
    with pytest.raises(CheckpointError, match=r"is damaged: .*differs from the checksum") as e:
        analysis.load_model(run, step=8)  # asked for by name: an error, one line
    assert "\n" not in str(e.value)
