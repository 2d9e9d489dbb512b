"""Data-size subsets (random, seeded, nested, host-count independent, resumable)
and class subsets (filter, restricted label columns, kept-count report, head size)."""

import math
import pathlib

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from big_vision_like import mesh as mesh_lib
from big_vision_like import trainer
from evaluators.map_at_k import load_class_weights
from input_pipeline import subsets
from input_pipeline.keys import MASK_KEY
from input_pipeline.pp.base import PPContext
from input_pipeline.pp.builder import build_preprocess
from input_pipeline.pp.registry import default_registry
from input_pipeline.run_data import RunData
from input_pipeline.stream import batches
from input_pipeline.stream.batches import HostShard
from tests.helpers import assert_resumes_exactly, data_dir_of, tiny_config

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _image_ids(source, subset, shard=None, shuffle_seed=3) -> list[int]:
    """image_id of every record the training reader keeps, in reading order
    (files shuffled, as training reads them)."""
    shard = shard or HostShard(0, 1)
    ds = batches.records(source, shard.split("train"), shuffle_seed=shuffle_seed,
                         subset=subset)
    return [int(x) for x in ds.map(lambda ex: ex["image_id"]).as_numpy_iterator()]


@pytest.fixture(scope="module")
def raw_train(tiny_source):
    """(image_id [N], raw label lists) of the train split in stored order: the
    NumPy reference's input."""
    ds = tiny_source.read("train")
    ids, labels = [], []
    for ex in ds.map(lambda ex: {"id": ex["image_id"], "labels": ex["labels"]}).as_numpy_iterator():
        ids.append(int(ex["id"]))
        labels.append(ex["labels"].tolist())
    return np.array(ids), labels


def test_data_subsets_are_nested_seeded_and_random(tiny_source, raw_train):
    stored, _ = raw_train
    n = len(stored)
    sets = {f: set(_image_ids(tiny_source, subsets.DataSubset(f, 0))) for f in (0.1, 0.3)}
    sets[1.0] = set(_image_ids(tiny_source, subsets.DataSubset(1.0, 0)))
    assert sets[1.0] == set(stored.tolist())
    assert sets[0.1] < sets[0.3] < sets[1.0]
    for f in (0.1, 0.3):
        mean, sd = n * f, math.sqrt(n * f * (1 - f))  # binomial
        assert abs(len(sets[f]) - mean) < 4 * sd, (f, len(sets[f]))
        # The exact count from the file instructions' ids equals what was read.
        assert subsets.subset_size(tiny_source, "train", f, 0) == len(sets[f])
        # Spread over the whole stored order, not its first records.
        pos = np.flatnonzero(np.isin(stored, list(sets[f])))
        assert pos.min() < 0.05 * n and pos.max() > 0.95 * n
        assert not np.array_equal(pos, np.arange(len(pos)))
    again = set(_image_ids(tiny_source, subsets.DataSubset(0.3, 0), shuffle_seed=11))
    assert again == sets[0.3]  # same seed, another file/read order: same subset
    other = set(_image_ids(tiny_source, subsets.DataSubset(0.3, 1)))
    overlap = len(other & sets[0.3]) / len(sets[0.3])
    assert other != sets[0.3] and 0.15 < overlap < 0.45  # independent draws: ~0.3


def test_data_subsets_are_the_same_for_every_host_count(tiny_source):
    subset = subsets.DataSubset(0.3, 0)
    unions = {}
    for count in (1, 2, 4):
        parts = [_image_ids(tiny_source, subset, HostShard(i, count), shuffle_seed=i)
                 for i in range(count)]
        flat = [i for p in parts for i in p]
        assert len(flat) == len(set(flat))  # no example read by two hosts
        unions[count] = set(flat)
    assert unions[1] == unions[2] == unions[4]


def test_resumed_stream_with_a_subset_equals_the_uninterrupted_one(tiny_source):
    pp = build_preprocess("keep('image_id')", default_registry(), PPContext())
    subset = subsets.DataSubset(0.3, 5)
    make = lambda start: batches.train_dataset(
        tiny_source, "train", pp, 16, seed=2, shard=HostShard(0, 1), shuffle_buffer=64,
        start_index=start, subset=subset)
    first = batches.HostIterator(make(0))
    whole = [next(first)["image_id"] for _ in range(50)]  # > one epoch of the subset
    kept = set(_image_ids(tiny_source, subset))
    assert set(np.concatenate(whole).tolist()) == kept
    assert_resumes_exactly(make, whole, at=13)


def _reference(tiny_source, raw_train, classes):
    """NumPy: filled multi-hot labels [N, C] and which images carry a class."""
    hierarchy = tiny_source.hierarchy()
    ids, labels = raw_train
    filled = np.stack([hierarchy.fill_ancestors(lab) for lab in labels]).astype(bool)
    return ids, filled, filled[:, list(classes)].any(1)


def _mixed_classes(tiny_source) -> tuple[int, ...]:
    """Two leaves and an inner class (whose images are found by their leaves), all
    labelled in fasteval (it labels the monitored classes only)."""
    meta = tiny_source.info.metadata
    monitored = meta["monitor_classes"]
    leaves = [c for c in monitored if c in meta["leaf_classes"]]
    inner = [c for c in monitored if c not in meta["leaf_classes"]]
    return (leaves[-1], inner[-1], leaves[0])


def test_class_subset_keeps_exactly_the_images_with_a_chosen_label(tiny_source, raw_train):
    classes = _mixed_classes(tiny_source)
    ids, filled, hit = _reference(tiny_source, raw_train, classes)
    assert 0 < hit.sum() < len(ids)
    hierarchy = tiny_source.hierarchy()
    num_classes = tiny_source.num_classes()
    subset = subsets.DataSubset(None, 0, classes,
                                subsets.hit_table(classes, num_classes, hierarchy), "labels")
    kept = _image_ids(tiny_source, subset)
    assert sorted(kept) == sorted(ids[hit].tolist())

    # The training targets: len(classes) columns, in the list's order.
    ctx = PPContext(num_classes=num_classes, hierarchy=hierarchy, classes=classes)
    pp = build_preprocess("multi_hot|keep('labels', 'image_id')", default_registry(), ctx)
    ds = batches.records(tiny_source, "train", None, subset)
    row = {int(i): k for k, i in enumerate(ids)}
    for ex in ds.map(lambda ex: pp.rest(dict(ex))).as_numpy_iterator():
        assert ex["labels"].shape == (len(classes),) and ex["labels"].any()
        np.testing.assert_array_equal(ex["labels"], filled[row[int(ex["image_id"])],
                                                           list(classes)])

    report = subsets.class_report(tiny_source, "train", subset, hierarchy, num_classes)
    assert report == subsets.SubsetReport(
        images_total=len(ids), images_kept=int(hit.sum()), labels_total=int(filled.sum()),
        labels_kept=int(filled[hit][:, list(classes)].sum()), num_classes=num_classes,
        classes_kept=len(classes))
    # Hosts count their shards; the sum is the whole split's report.
    halves = [subsets.class_report(tiny_source, HostShard(i, 2).split("train"), subset,
                                   hierarchy, num_classes) for i in range(2)]
    assert halves[0] + halves[1] == report and 0 < halves[0].images_kept < report.images_kept
    # With a data-size subset too, the report counts within it.
    both = subsets.DataSubset(0.3, 0, subset.classes, subset.hits, subset.key)
    in_data = np.isin(ids, _image_ids(tiny_source, subsets.DataSubset(0.3, 0)))
    report = subsets.class_report(tiny_source, "train", both, hierarchy, num_classes)
    assert (report.images_total, report.images_kept) == (in_data.sum(), (in_data & hit).sum())


def test_classes_resolve_from_a_file_of_names_and_ids(tiny_source, tmp_path):
    names = tiny_source.info.metadata["class_names"]
    n = len(names)
    path = tmp_path / "classes.txt"
    path.write_text(f"# chosen\n{names[7]}\n\n12  # by id\n{names[30]}\n")
    assert subsets.resolve_classes(str(path), n, names) == (7, 12, 30)
    assert subsets.resolve_classes([5, names[2]], n, names) == (5, 2)
    cases = [([n], "out of range"), ([-1], "out of range"), (["no such class"], "unknown class"),
             ([3, 3], "listed twice"), ([], "names no class"),
             (str(tmp_path / "missing.txt"), "no such file")]
    for spec, message in cases:
        with pytest.raises(subsets.SubsetError, match=message):
            subsets.resolve_classes(spec, n, names)
    # mAP weights given per class of the whole label space follow the columns.
    weights = tmp_path / "weights.txt"
    np.savetxt(weights, np.arange(n) + 0.5)
    got = load_class_weights(str(weights), 3, ((7, 12, 30), n))
    np.testing.assert_array_equal(got, [7.5, 12.5, 30.5])
    np.savetxt(weights, np.arange(n - 1) + 0.5)
    with pytest.raises(ValueError, match=f"hold {n - 1} weights"):
        load_class_weights(str(weights), 3, ((7, 12, 30), n))
    with pytest.raises(subsets.SubsetError, match="give a number in"):
        subsets.check_fraction(0.0)
    with pytest.raises(subsets.SubsetError, match="give a number in"):
        subsets.check_fraction(1.5)


def test_config_fields_from_the_shell():
    path = str(ROOT / "configs" / "demo.py")

    def parse(*overrides):
        argv = ["train", f"--config={path}", *overrides]
        flag_values = flags.FlagValues()
        config_flags.DEFINE_config_file("config", None, flag_values=flag_values,
                                        lock_config=True, sys_argv=argv)
        flag_values(argv)
        return flag_values.config.input.data

    data = parse("--config.input.data.subset_fraction=0.1", "--config.input.data.subset_seed=3",
                 "--config.input.data.classes=/some/classes.txt")
    assert (data.subset_fraction, data.subset_seed, data.classes) == (0.1, 3,
                                                                      "/some/classes.txt")
    assert parse("--config.input.data.classes=(4, 9)").classes == (4, 9)
    with pytest.raises(Exception, match="subset_frac"):
        parse("--config.input.data.subset_frac=0.1")


def test_trainer_data_and_head_follow_the_subsets(tiny_source, raw_train, tmp_path, caplog):
    classes = _mixed_classes(tiny_source)
    c = tiny_config(data_dir_of(tiny_source))
    c.input.data.classes = classes
    c.input.data.subset_fraction = 0.5
    caplog.set_level("INFO")
    mesh = mesh_lib.make_mesh(8, 1)
    data = RunData(c, mesh)
    ids, filled, hit = _reference(tiny_source, raw_train, classes)
    in_data = np.isin(ids, _image_ids(tiny_source, subsets.DataSubset(0.5, 0)))
    kept = int((in_data & hit).sum())
    # Epochs count the kept images; the start of a run says how many.
    assert data.train_examples == kept == data.subset_report.images_kept
    # Label frequencies (mAP weights, the baseline) are over what is trained on.
    np.testing.assert_allclose(data.train_label_frequencies(),
                               filled[in_data & hit][:, list(classes)].mean(0))
    assert f"training on {kept} of the {len(ids)} examples" in caplog.text
    assert f"{kept} of {int(in_data.sum())} images" in caplog.text

    task = trainer.build_task(c, mesh, data.num_classes)
    params = jax.eval_shape(lambda: task.init(jax.random.key(0), (32, 32, 3)))["params"]
    assert params["head"]["kernel"].shape[-1] == len(classes)
    with data.train_iterator(None) as it:
        labels = np.asarray(next(it)["labels"])
    assert labels.shape == (16, len(classes)) and labels.any(1).all()
    # Evaluators of the same label space read the same columns, every image.
    ev = c.evals.fasteval
    got = [np.asarray(b["labels"])[np.asarray(b[MASK_KEY])]
           for b in data.eval_batches(ev.data, ev.pp, 64)]
    fasteval = np.concatenate(got)
    assert fasteval.shape == (tiny_source.info.splits["fasteval"].num_examples, len(classes))
    assert fasteval.any(0).all()  # every chosen class is labelled there

    c.model.num_classes = 7
    with pytest.raises(subsets.SubsetError, match="model.num_classes=7"):
        trainer.train(c, str(tmp_path / "bad"))
