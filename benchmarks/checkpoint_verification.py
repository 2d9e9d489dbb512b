"""What checkpoint checksums cost: save and restore with and without them.

For a config's full train state (parameters, batch-norm statistics, optimizer
state; random values, on this machine's devices with the config's sharding),
times in one process, alternating, best of `--repeats`:
- save: `Checkpointer.save` until written (`wait`), with the checksums
  (the default) and with `checksums.with_checksums` replaced by a no-op;
- restore: `Checkpointer.restore`, with its verification and with
  `checksums.first_mismatch` replaced by a no-op;
- the checksum pass alone (one jitted reduction over the state).

    python -m benchmarks.checkpoint_verification --config configs/demo.py
    python -m benchmarks.checkpoint_verification --config configs/jft300m_resnet101.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
import time
from unittest import mock

import jax

from big_vision_like import checkpointing, checksums, optim, train_step, trainer
from big_vision_like import mesh as mesh_lib
from big_vision_like import sharding as sharding_lib
from big_vision_like.config.cli import load_config


def _state(config_file: str, num_classes: int):
    config, _ = load_config(config_file)
    mesh = mesh_lib.make_mesh(config.mesh.data, config.mesh.model)
    task = trainer.build_task(config, mesh, config.model.get("num_classes") or num_classes)
    tx = optim.build_optimizer(config.optimizer, 0.1)
    rules = sharding_lib.rules_for(config.sharding, config.sharding_rules)
    state, shardings = train_step.create_train_state(
        task, tx, tuple(config.input.image_shape), jax.random.key(0), mesh, rules)
    return state, train_step.abstract_with_shardings(state, shardings)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num_classes", type=int, default=600,
                        help="Head size where the config takes it from the data "
                             "(synthetic_jft/demo: 600).")
    args = parser.parse_args()
    state, abstract = _state(args.config, args.num_classes)
    sizes = [x.size * x.dtype.itemsize for x in jax.tree.leaves(state)]
    checksums.of_state(state)  # compiled once, as a run compiles it at its first save
    scratch = tempfile.mkdtemp(prefix="bvl_ckpt_cost_")
    times: dict[str, list[float]] = {k: [] for k in (
        "save_with", "save_without", "restore_with", "restore_without", "checksums")}
    try:
        ckpt = checkpointing.Checkpointer(scratch, keep=None)
        step = 0
        for _ in range(args.repeats):
            for key in ("save_with", "save_without"):
                step += 1
                patch = (mock.patch.object(checksums, "with_checksums", lambda d, s: dict(d))
                         if key == "save_without" else contextlib.nullcontext())
                with patch:
                    times[key].append(_timed(lambda s=step: (ckpt.save(s, state),
                                                             ckpt.wait())))
            for key in ("restore_with", "restore_without"):
                patch = (mock.patch.object(checksums, "first_mismatch", lambda *a: None)
                         if key == "restore_without" else contextlib.nullcontext())
                with patch:
                    # step - 1 was saved with checksums, step without.
                    times[key].append(_timed(lambda s=step - 1: jax.block_until_ready(
                        ckpt.restore(s, abstract))))
            times["checksums"].append(_timed(lambda: checksums.of_state(state)))
        ckpt.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    best = {k: min(v) for k, v in times.items()}
    print(json.dumps({
        "config": args.config, "arrays": len(sizes), "megabytes": round(sum(sizes) / 1e6, 1),
        "devices": jax.device_count(), **{f"{k}_s": round(v, 3) for k, v in best.items()},
        "save_ratio": round(best["save_with"] / best["save_without"], 3),
        "restore_ratio": round(best["restore_with"] / best["restore_without"], 3)}))


if __name__ == "__main__":
    main()
