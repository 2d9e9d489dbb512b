"""The source interface: names dispatched to their kind, each kind's preparation
policy, and what a `DataSource` answers, against the builder it wraps."""

import pytest
import tensorflow as tf

from input_pipeline.errors import InputPipelineError
from input_pipeline.sources import kinds
from input_pipeline.sources.core import DataSource
from input_pipeline.sources.registry import SourceRegistry, default_registry


@pytest.mark.parametrize("name, kind", [
    ("synthetic_jft/tiny", kinds.Generated),
    ("synthetic_jft/demo:1.0.0", kinds.Generated),
    ("sklearn_digits/32px", kinds.Generated),
    ("voc2012_segmentation", kinds.FromManualFolder),
    ("coco_detection", kinds.FromManualFolder),
    ("open_images_labels/human", kinds.FromManualFolder),
    ("image_folder:/data/flowers", kinds.LocalFolder),
    ("image_labels:/data/photos?strict=true", kinds.LocalFolder),
    ("imagenet2012", kinds.Prepared),
    ("mnist:3.0.1", kinds.Prepared),
])
def test_names_dispatch_to_their_kind(name, kind):
    assert type(default_registry().kind_of(name)) is kind


def test_a_registry_built_afresh_takes_new_kinds_and_refuses_doubles():
    class Mine(kinds.SourceKind):
        pass

    reg = SourceRegistry()
    reg.register("my_data:", Mine())
    assert isinstance(reg.kind_of("my_data:/x"), Mine)
    assert isinstance(reg.kind_of("my_data/x"), kinds.Prepared)  # not the prefix
    assert reg.keys(Mine) == ["my_data:"]
    with pytest.raises(KeyError, match="twice"):
        reg.register("my_data:", Mine())
    assert "my_data:" not in default_registry().keys()


def test_each_policy_prepares_only_what_it_may(tmp_path):
    reg = default_registry()
    with pytest.raises(InputPipelineError, match="not prepared"):  # generated, not allowed
        reg.open("synthetic_jft/tiny", str(tmp_path), prepare=False)
    with pytest.raises(InputPipelineError, match="never downloaded.*--manual_dir"):
        reg.open("voc2007_detection", str(tmp_path))  # no manual folder to read
    with pytest.raises(InputPipelineError, match=r"not prepared.*tfds build mnist"):
        reg.open("mnist", str(tmp_path))
    assert not list(tmp_path.iterdir())  # none of them wrote anything


def test_a_data_source_answers_as_its_builder(tiny_source):
    builder = tiny_source.builder
    assert tiny_source.num_classes() == builder.info.features["labels"].feature.num_classes
    assert tiny_source.class_names == builder.info.metadata["class_names"]
    h = tiny_source.hierarchy()
    assert h.num_classes == tiny_source.num_classes()
    assert tiny_source.num_examples("fasteval") == builder.info.splits["fasteval"].num_examples
    files = tiny_source.files("train[:50%]")
    assert files and all(tf.io.gfile.exists(f) for f in files)
    with pytest.raises(ValueError, match=r"split 'valid' of synthetic_jft/tiny.*'fasteval'"):
        tiny_source.check_split("valid")


def test_read_gives_encoded_records_in_order_or_shuffled(tiny_source):
    n = tiny_source.num_examples("fasteval")
    ordered = list(tiny_source.read("fasteval").as_numpy_iterator())
    assert len(ordered) == n
    assert isinstance(ordered[0]["image"], bytes) and ordered[0]["image"][:2] == b"\xff\xd8"
    ids = [int(ex["image_id"]) for ex in ordered]
    reference = [int(ex["image_id"]) for ex in tiny_source.builder.as_dataset(
        split="fasteval").as_numpy_iterator()]
    assert ids == reference
    with_ids = next(iter(tiny_source.read("train", with_ids=True)))
    assert with_ids["tfds_id"].numpy().decode().startswith("synthetic_jft-train.tfrecord")
    a = [int(ex["image_id"]) for ex in tiny_source.read("train", shuffle_seed=1)]
    b = [int(ex["image_id"]) for ex in tiny_source.read("train", shuffle_seed=1)]
    assert a == b and sorted(a) == sorted(
        int(ex["image_id"]) for ex in tiny_source.read("train"))


def test_a_dataset_brings_its_own_ops(tiny_source):
    assert set(tiny_source.pp_ops) == {"semantic_from_instances", "objects_to_level",
                                       "objects_of_families"}
    plain = DataSource("x", tiny_source.builder)
    assert dict(plain.pp_ops) == {}
