"""Fine-tuning through the one training loop: init_from restores every variable,
partial loading is reported, mismatches are named, old layouts load."""

import os

import jax
import numpy as np
import pytest

from big_vision_like import init_from, trainer
from big_vision_like import mesh as mesh_lib
from big_vision_like.checkpointing import CheckpointError
from big_vision_like.models import resnet
from tests.helpers import data_dir_of, tiny_config


def leaves(tree):
    return {jax.tree_util.keystr(p): np.asarray(v)
            for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def eval_logits(task, state):
    images = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
    return np.asarray(task.forward(jax.device_get(state.variables), {"image": images},
                                   train=False)["logits"])


def source_checkpoint(pretrained_tiny):
    return os.path.join(pretrained_tiny[0], "checkpoints", "8")


def test_init_from_restores_batch_norm_statistics_and_the_logits(
        tiny_source, pretrained_tiny, tmp_path):
    _, source_state = pretrained_tiny
    config = tiny_config(data_dir_of(tiny_source), total_steps=0, evals={})
    config.init_from = dict(checkpoint=source_checkpoint(pretrained_tiny), skip=None)
    state = trainer.train(config, str(tmp_path))
    got, want = leaves(state.model_state), leaves(source_state.model_state)
    assert got.keys() == want.keys() and got
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    # The running statistics moved away from their 0/1 start in pre-training,
    # so restoring only the parameters would change the logits.
    assert max(np.abs(v - np.round(v)).max() for v in want.values()) > 1e-3
    task = trainer.build_task(config, mesh_lib.make_mesh(8, 1),
                              tiny_source.num_classes())
    np.testing.assert_array_equal(eval_logits(task, state), eval_logits(task, source_state))


def test_partial_loading_reports_loaded_fresh_and_unused(tiny_source, pretrained_tiny,
                                                         tmp_path):
    config = tiny_config(data_dir_of(tiny_source), total_steps=0, evals={})
    config.model.depth = 34  # more blocks per stage than the depth-18 source
    config.init_from = dict(checkpoint=source_checkpoint(pretrained_tiny), skip="^head/")
    trainer.train(config, str(tmp_path))
    report = (tmp_path / "init_from_report.txt").read_text().splitlines()
    assert "loaded: params/conv2_block1/conv1/kernel" in report
    assert "loaded: batch_stats/conv2_block1/bn1/mean" in report
    assert "kept fresh (skip pattern): params/head/kernel" in report
    assert "kept fresh (not in checkpoint): params/conv2_block3/conv1/kernel" in report
    assert "kept fresh (not in checkpoint): batch_stats/conv4_block6/bn2/var" in report
    assert not [line for line in report if line.startswith("unused")]


def test_unused_and_mismatched_variables_are_named():
    target = {"params": {"w": jax.numpy.zeros((2, 3))}}
    merged, report = init_from.merge(target, {"params/w": np.ones((2, 3)),
                                              "params/extra": np.ones(4)})
    assert report.unused == ["params/extra"] and report.loaded == ["params/w"]
    np.testing.assert_array_equal(merged["params"]["w"], 1)
    with pytest.raises(CheckpointError, match=r"params/w has shape \(3, 2\) in the "
                                              r"checkpoint but \(2, 3\) in the model"):
        init_from.merge(target, {"params/w": np.ones((3, 2))})


def test_a_skip_pattern_that_matches_nothing_is_an_error_naming_it():
    target = {"params": {"head": {"kernel": jax.numpy.zeros((2, 3))}}}
    loaded = {"params/head/kernel": np.ones((2, 3)), "params/old_head/kernel": np.ones(2)}
    with pytest.raises(CheckpointError, match=r"init_from.skip '\^haed' matches no variable"
                                              r" of the model or the checkpoint \(names "
                                              r"look like head/kernel, old_head/kernel\)"):
        init_from.merge(target, loaded, skip="^haed")
    # A pattern that matches only checkpoint variables (an old head) is not a typo.
    _, report = init_from.merge(target, loaded, skip="^old_head")
    assert report.loaded == ["params/head/kernel"] and not report.unused


def test_load_hook_maps_the_earlier_stem_batch_norm_name():
    target = {"params": {"conv1_bn": {"scale": jax.numpy.zeros(4)}},
              "batch_stats": {"conv1_bn": {"mean": jax.numpy.zeros(4)}}}
    old = {"params/bn1/scale": np.full(4, 2.0), "batch_stats/bn1/mean": np.full(4, 3.0)}
    merged, report = init_from.merge(target, old, load_hook=resnet.load)
    assert not report.missing and not report.unused
    np.testing.assert_array_equal(merged["batch_stats"]["conv1_bn"]["mean"], 3.0)


def test_frozen_stages_and_their_statistics_stay_bit_identical(tiny_source, pretrained_tiny,
                                                               tmp_path):
    """Fine-tuning with conv1-conv4 frozen: those parameters and batch-norm statistics
    equal the source's bit for bit after training steps; conv5 and the head move."""
    _, source = pretrained_tiny
    config = tiny_config(data_dir_of(tiny_source), total_steps=3, ckpt_steps=3, evals={})
    config.init_from = dict(checkpoint=source_checkpoint(pretrained_tiny), skip=None)
    config.frozen = "^(conv1|conv[2-4])"
    config.lr_mults = (("^head/", 10.0),)
    state = trainer.train(config, str(tmp_path))
    frozen = changed = 0
    for tree, before in [(state.params, source.params),
                         (state.model_state["batch_stats"], source.model_state["batch_stats"])]:
        old = leaves(before)
        for path, value in leaves(tree).items():
            name = path.replace("']['", "/").strip("[']")
            if name.startswith(("conv1", "conv2", "conv3", "conv4")):
                np.testing.assert_array_equal(value, old[path], err_msg=name)
                frozen += 1
            elif not np.array_equal(value, old[path]):
                changed += 1
    assert frozen > 50 and changed > 10
    # Every conv5 kernel and batch-norm statistic trained (the head too).
    assert not np.array_equal(np.asarray(state.params["conv5_block2"]["conv2"]["kernel"]),
                              np.asarray(source.params["conv5_block2"]["conv2"]["kernel"]))
    assert not np.array_equal(
        np.asarray(state.model_state["batch_stats"]["conv5_block2"]["bn2"]["mean"]),
        np.asarray(source.model_state["batch_stats"]["conv5_block2"]["bn2"]["mean"]))


@pytest.mark.slow
def test_imagenet_fine_tuning_recipe_runs_on_a_small_single_label_task(
        tiny_source, pretrained_tiny, tmp_path):
    """configs/transfer/imagenet_finetune_resnet101.py, shrunk: a fresh softmax head
    over the dataset's classes on the pre-trained body, top-1/top-5 at the end."""
    from configs.transfer import imagenet_finetune_resnet101 as ft

    c = ft.get_config()
    # configs/lr_policy.py: the paper's 1e-3 per update of 32, scaled to the batch of 1600.
    assert c.schedule.base_lr == pytest.approx(1e-3 * 1600 / 32)
    assert c.total_examples == 4_000_000 * 32
    single = "object_label|onehot(key='label')|keep('image', 'labels')"
    c.input.data = dict(name="synthetic_jft/tiny", split="train",
                        data_dir=data_dir_of(tiny_source))
    c.input.image_shape = (32, 32, 3)
    c.input.pp = f"decode|resize(36)|random_crop(32)|flip_lr|value_range(-1, 1)|{single}"
    c.input.shuffle_buffer = 100
    c.evals.val.data = dict(split="test")
    c.evals.val.pp = f"decode|resize(36)|central_crop(32)|value_range(-1, 1)|{single}"
    c.model.update(depth=18, width=0.25, dtype="float32")
    c.batch_size, c.eval_batch_size, c.total_examples, c.total_steps = 16, 64, None, 3
    c.init_from.checkpoint = source_checkpoint(pretrained_tiny)
    trainer.train(c, str(tmp_path))
    report = (tmp_path / "init_from_report.txt").read_text()
    assert "kept fresh (skip pattern): params/head/kernel" in report
    got = trainer.summary(str(tmp_path))
    assert 0 <= got["val/prec@1"] <= got["val/prec@5"] <= 1 and np.isfinite(got["val/loss"])
