"""Test setup: 8 fake CPU devices, and a small synthetic dataset shared by tests."""

import os

# Must happen before jax is imported anywhere, so every test sees 8 devices.
# The tests' programs are tiny, so XLA:CPU compilation dominates their time:
# LLVM at -O0 compiles them about twice as fast (two train-step tests: 50 s ->
# 27 s) and subprocesses inherit it (tests.helpers.xla_flags), so runs that
# tests compare bit for bit are compiled alike.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_backend_optimization_level=0"
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Many tests compile the same tiny programs (the trainer rebuilds its jitted
# step per run, and subprocess runs start cold): a persistent compilation
# cache, fresh for each session and inherited by subprocesses, compiles each
# once (the suite grew from 269 to 348 tests while its CI time went from 15.0
# to 17.5 min with the cache on).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="bvl_test_jax_cache_")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

import pytest


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory):
    """synthetic_jft/tiny (32 px, 40 leaves), generated once per test session."""
    import fcntl

    from input_pipeline.sources.registry import open_source

    shared = os.environ.get("BVL_TEST_DATA_DIR")
    if not shared:
        return open_source("synthetic_jft/tiny", str(tmp_path_factory.mktemp("tfds")))
    # Test processes (pytest -n 2) share this folder: one generates the data,
    # the others wait for it instead of writing the same files at once.
    os.makedirs(shared, exist_ok=True)
    with open(os.path.join(shared, ".bvl_test_data.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return open_source("synthetic_jft/tiny", shared)


@pytest.fixture(scope="session")
def pretrained_tiny(tiny_source, tmp_path_factory):
    """(workdir, final state) of the tiny pre-training run, trained once per session."""
    from big_vision_like import trainer
    from tests.helpers import data_dir_of, tiny_config

    workdir = str(tmp_path_factory.mktemp("pretrained_tiny"))
    state = trainer.train(tiny_config(data_dir_of(tiny_source)), workdir)
    return workdir, state


def pytest_collection_modifyitems(config, items):
    """Modules with whole-run (`slow`) tests first, their slow tests leading: the
    test processes then end on short tests, instead of one waiting idle while the
    other runs a two-minute test collected last. Modules stay together, so their
    module-scoped fixtures are built once per test process."""
    slow = lambda item: item.get_closest_marker("slow") is not None
    modules_with_slow = {item.module for item in items if slow(item)}
    order = {module: i for i, module in enumerate(dict.fromkeys(i.module for i in items))}
    items.sort(key=lambda item: (item.module not in modules_with_slow, order[item.module],
                                 not slow(item)))
