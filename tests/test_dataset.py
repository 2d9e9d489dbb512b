import collections
import shutil

import numpy as np
import pytest
import tensorflow as tf

from input_pipeline.keys import MASK_KEY
from input_pipeline.pp.base import PPContext
from input_pipeline.pp.builder import build_preprocess
from input_pipeline.pp.registry import default_registry
from input_pipeline.sources.core import DataSource
from input_pipeline.sources.registry import open_source
from input_pipeline.stream import batches

PP = ("decode|resize(36)|random_crop(32)|flip_lr|value_range(-1, 1)|multi_hot"
      "|keep('image', 'labels', 'image_id')")


def make_pp(source, spec=PP):
    ctx = PPContext(num_classes=source.num_classes(),
                    hierarchy=source.hierarchy())
    return build_preprocess(spec, default_registry(), ctx)


def eval_ids(source, split, batch, shard, **kw):
    """Per host: the image ids of real examples, and the number of batches."""
    ds, n = batches.eval_dataset(source, split, make_pp(source), batch, shard=shard, **kw)
    it = batches.HostIterator(ds)
    got = list(it)
    assert len(got) == n
    ids = np.concatenate([b["image_id"][b[MASK_KEY]] for b in got])
    assert all((b["image_id"][~b[MASK_KEY]] == 0).all() for b in got)
    return ids, n, it


@pytest.mark.parametrize("hosts", [1, 2, 3])
@pytest.mark.parametrize("batch", [7, 64])
def test_eval_covers_every_example_exactly_once(tiny_source, hosts, batch):
    total = tiny_source.info.splits["fasteval"].num_examples
    per_host = [eval_ids(tiny_source, "fasteval", batch, batches.HostShard(i, hosts))
                for i in range(hosts)]
    assert len({n for _, n, _ in per_host}) == 1  # same number of batches on all hosts
    counts = collections.Counter(np.concatenate([ids for ids, _, _ in per_host]).tolist())
    assert sorted(counts) == list(range(total)) and set(counts.values()) == {1}


def test_split_slicing_like_the_papers_subsets(tiny_source):
    ids, _, _ = eval_ids(tiny_source, "train[:10%]", 32, batches.HostShard(0, 1))
    assert len(ids) == 200 and len(set(ids.tolist())) == 200


@pytest.mark.parametrize("hosts", [2, 3])
def test_train_shards_are_disjoint_and_cover_the_split(tiny_source, hosts):
    total = tiny_source.info.splits["train"].num_examples
    seen = []
    for i in range(hosts):
        shard = batches.HostShard(i, hosts)
        size = tiny_source.info.splits[shard.split("train")].num_examples
        ds = batches.train_dataset(tiny_source, "train", make_pp(tiny_source), 50, seed=0,
                                   shard=shard, shuffle_buffer=100)
        ids = np.concatenate([b["image_id"] for b, _ in zip(batches.HostIterator(ds),
                                                             range(size // 50))])
        first_epoch = ids[:size - size % 50]
        assert len(set(first_epoch.tolist())) == len(first_epoch)  # no repeats in an epoch
        seen.append(set(first_epoch.tolist()))
    union = set().union(*seen)
    assert sum(len(s) for s in seen) == len(union)  # hosts disjoint
    assert len(union) > total - hosts * 50 and max(union) < total


def test_train_stream_is_reproducible_and_seed_dependent(tiny_source):
    def first(seed):
        ds = batches.train_dataset(tiny_source, "train", make_pp(tiny_source), 16, seed=seed,
                                   shard=batches.HostShard(0, 1), shuffle_buffer=200)
        it = batches.HostIterator(ds)
        return [next(it) for _ in range(3)]
    a, b, c = first(0), first(0), first(1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["labels"], y["labels"])
    assert not np.array_equal(a[0]["image_id"], c[0]["image_id"])
    assert a[0]["labels"].shape == (16, tiny_source.num_classes())


def test_unbatchable_preprocessing_is_a_clear_error(tiny_source):
    pp = make_pp(tiny_source, "decode|value_range(-1, 1)")  # keeps the ragged objects
    with pytest.raises(batches.InputPipelineError, match="keep\\('image', 'labels'\\)"):
        batches.eval_dataset(tiny_source, "fasteval", pp, 8, shard=batches.HostShard(0, 1))


CORRUPT_IDS = (3, 17, 42)


@pytest.fixture(scope="module")
def corrupt_source(tiny_source, tmp_path_factory):
    """A copy of the tiny dataset whose fasteval images 3, 17, 42 are not images."""
    import tensorflow_datasets as tfds

    root = tmp_path_factory.mktemp("corrupt")
    src = tiny_source.builder.data_path
    dst = root / src.relative_to(tiny_source.builder.data_dir.rsplit("/synthetic_jft", 1)[0])
    shutil.copytree(src, dst)
    for path in sorted(dst.glob("synthetic_jft-fasteval.tfrecord*")):
        records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
        with tf.io.TFRecordWriter(str(path)) as w:
            for rec in records:
                ex = tf.train.Example.FromString(rec)
                image_id = ex.features.feature["image_id"].int64_list.value[0]
                if image_id in CORRUPT_IDS:
                    ex.features.feature["image"].bytes_list.value[0] = b"\xff\xd8 not a jpeg"
                w.write(ex.SerializeToString())
    return DataSource("synthetic_jft/tiny", tfds.builder("synthetic_jft/tiny", data_dir=str(root)))


def test_corrupt_images_are_skipped_and_counted(corrupt_source):
    total = corrupt_source.info.splits["fasteval"].num_examples
    ids, _, it = eval_ids(corrupt_source, "fasteval", 32, batches.HostShard(0, 1))
    assert it.skipped == len(CORRUPT_IDS)
    assert sorted(ids.tolist()) == sorted(set(range(total)) - set(CORRUPT_IDS))


def test_corrupt_images_can_be_fatal(corrupt_source):
    with pytest.raises(batches.InputPipelineError, match="skip_corrupt=True"):
        eval_ids(corrupt_source, "fasteval", 32, batches.HostShard(0, 1), skip_corrupt=False)


def test_unprepared_foreign_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(batches.InputPipelineError, match="not prepared"):
        open_source("mnist", data_dir=str(tmp_path))


def test_a_misspelt_dataset_config_lists_the_real_ones(tmp_path):
    with pytest.raises(batches.InputPipelineError,
                       match=r"synthetic_jft has no config 'tinyy'; use one of "
                             r"synthetic_jft/tiny, synthetic_jft/demo"):
        open_source("synthetic_jft/tinyy", data_dir=str(tmp_path))


def test_label_statistics_of_a_split_smaller_than_the_sample(tiny_source):
    from input_pipeline import prepare

    stats = prepare.label_statistics(tiny_source)  # samples 5,000 of 2,000
    assert stats["images"] == 2000 and stats["labels_per_image"] >= 1
    assert 0 < stats["noisy_label_rate"] < 1
