"""Images chosen by id lists (input.data.keep_image_ids / drop_image_ids, and the
same fields in an evaluator's data): the records kept, on every host count, in
the training stream (resumed exactly) and in evaluations; clear errors."""

import collections
import types

import numpy as np
import pytest

from big_vision_like import mesh as mesh_lib
from input_pipeline import subsets
from input_pipeline.image_ids import ImageIds
from input_pipeline.keys import MASK_KEY
from input_pipeline.pp.base import PPContext
from input_pipeline.pp.builder import build_preprocess
from input_pipeline.pp.registry import default_registry
from input_pipeline.run_data import RunData
from input_pipeline.stream import batches
from input_pipeline.stream.batches import HostShard
from tests.helpers import assert_resumes_exactly, data_dir_of, tiny_config

KEEP_ID = build_preprocess("keep('image_id')", default_registry(), PPContext())


def _split_ids(source, split):
    ds = source.read(split).map(lambda ex: ex["image_id"])
    return np.array(list(ds.as_numpy_iterator()))


@pytest.mark.parametrize("hosts", [1, 3])
def test_an_evaluation_reads_exactly_the_listed_images_once(tiny_source, hosts):
    all_ids = _split_ids(tiny_source, "fasteval")
    rng = np.random.default_rng(0)
    keep = rng.choice(all_ids, 37, replace=False)
    drop = keep[:5]
    ids = ImageIds(np.concatenate([keep, [10 ** 9]]), drop)  # an id not in the split
    per_host = []
    for i in range(hosts):
        ds, n = batches.eval_dataset(tiny_source, "fasteval", KEEP_ID, 8,
                                     shard=HostShard(i, hosts), ids=ids)
        got = list(batches.HostIterator(ds))
        assert len(got) == n
        per_host.append((n, np.concatenate([b["image_id"][b[MASK_KEY]] for b in got])))
    assert len({n for n, _ in per_host}) == 1  # every host runs the same batches
    seen = collections.Counter(np.concatenate([i for _, i in per_host]).tolist())
    assert sorted(seen) == sorted(keep[5:].tolist()) and set(seen.values()) == {1}
    # Batches for the listed images, not for the whole split.
    assert per_host[0][0] <= -(-32 // 8) < 500 // hosts // 8


def test_training_without_listed_images_resumes_exactly_and_counts_its_epoch(
        tiny_source, tmp_path):
    all_ids = _split_ids(tiny_source, "train")
    drop = all_ids[::3]
    path = tmp_path / "held_out.txt"
    np.savetxt(path, drop, fmt="%d")
    c = tiny_config(data_dir_of(tiny_source))
    c.input.data.drop_image_ids = str(path)
    data = RunData(c, mesh_lib.make_mesh(8, 1))
    assert data.train_examples == len(all_ids) - len(drop)
    subset = data.subset
    make = lambda start: batches.train_dataset(
        tiny_source, "train", KEEP_ID, 16, seed=2, shard=HostShard(0, 1), shuffle_buffer=64,
        start_index=start, subset=subset)
    first = batches.HostIterator(make(0))
    steps = -(-data.train_examples // 16) + 3  # more than one epoch
    whole = [next(first)["image_id"] for _ in range(steps)]
    assert set(np.concatenate(whole).tolist()) == set(all_ids.tolist()) - set(drop.tolist())
    assert_resumes_exactly(make, whole, at=11)


def test_id_lists_combine_with_a_data_size_subset(tiny_source):
    all_ids = _split_ids(tiny_source, "train")
    keep = all_ids[: len(all_ids) // 2]
    half = subsets.DataSubset(0.5, 1)
    both = subsets.DataSubset(0.5, 1, image_ids=ImageIds(keep=keep))
    in_half = set(batches.records(tiny_source, "train", None, half)
                  .map(lambda ex: ex["image_id"]).as_numpy_iterator())
    got = [int(i) for i in batches.records(tiny_source, "train", None, both)
           .map(lambda ex: ex["image_id"]).as_numpy_iterator()]
    assert sorted(got) == sorted(in_half & set(keep.tolist())) and got
    assert subsets.examples_per_epoch(tiny_source, "train", both, None) == len(got)


def test_an_evaluators_id_list_goes_through_run_data(tiny_source):
    c = tiny_config(data_dir_of(tiny_source))
    keep = _split_ids(tiny_source, "fasteval")[[3, 1, 4]]
    ev = c.evals.fasteval
    ev.data.keep_image_ids = [int(i) for i in keep]
    data = RunData(c, mesh_lib.make_mesh(8, 1))
    data.check_eval_input(ev.data, ev.pp)
    got = [np.asarray(b["image_id"])[np.asarray(b[MASK_KEY])]
           for b in data.eval_batches(ev.data, "keep('image_id')", 8)]
    assert sorted(np.concatenate(got).tolist()) == sorted(keep.tolist())


def test_bad_id_lists_are_named(tiny_source, tmp_path):
    with pytest.raises(ValueError, match=r"input.data.keep_image_ids '/no/such.txt'.*one "
                                         "integer image_id a line"):
        ImageIds.from_config({"keep_image_ids": "/no/such.txt"})
    bad = tmp_path / "bad.txt"
    bad.write_text("17\nseventeen\n")
    with pytest.raises(ValueError, match="drop_image_ids"):
        ImageIds.from_config({"drop_image_ids": str(bad)})
    with pytest.raises(ValueError, match="lists no id"):
        ImageIds.from_config({"keep_image_ids": []})
    assert ImageIds.from_config({}) is None
    no_ids = types.SimpleNamespace(name="digits", info=types.SimpleNamespace(
        features={"image": None, "label": None}))
    with pytest.raises(ValueError, match="digits has no 'image_id' feature"):
        ImageIds(drop=np.array([1])).check(no_ids)


def test_coco_minival_star_recipe_trains_and_evaluates_on_complementary_images(tmp_path):
    """The recipe in faster_rcnn_coco_resnet101's docstring, on the real layout:
    train+val without the list trains, train+val with only the list evaluates."""
    import re

    from big_vision_like.config.cli import load_config
    from big_vision_like.config.validate import validate
    from configs.transfer import faster_rcnn_coco_resnet101 as coco_config
    from input_pipeline.sources.registry import open_source
    from tests.test_detection_readers import COCO_IMAGES, write_coco

    minival = tmp_path / "minival_star.txt"
    minival.write_text("139\n25\n")
    flags = [f.replace("minival_star.txt", str(minival))
             for f in re.findall(r"--config\.\S+", coco_config.__doc__)
             if "image_ids" in f or "split=" in f]
    assert len(flags) == 4, flags
    c, _ = load_config(coco_config.__file__, flags)
    validate(c, 8)
    write_coco(str(tmp_path / "manual"))
    source = open_source("coco_detection", data_dir=str(tmp_path / "tfds"),
                         manual_dir=str(tmp_path / "manual"))
    every = {i for split in COCO_IMAGES.values() for i in split}
    train = subsets.DataSubset(image_ids=ImageIds.from_config(c.input.data))
    got = {int(i) for i in batches.records(source, c.input.data.split, 0, train)
           .map(lambda ex: ex["image_id"]).as_numpy_iterator()}
    assert got == every - {139, 25}
    assert subsets.examples_per_epoch(source, c.input.data.split, train, None) == 2
    ds, _ = batches.eval_dataset(source, c.evals.test.data.split, KEEP_ID, 4,
                                 shard=HostShard(0, 1),
                                 ids=ImageIds.from_config(c.evals.test.data))
    evaluated = np.concatenate([b["image_id"][b[MASK_KEY]] for b in batches.HostIterator(ds)])
    assert sorted(evaluated.tolist()) == [25, 139]
