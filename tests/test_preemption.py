"""SIGTERM (a preemption notice): save at one agreed step, exit 143, resume exactly."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from big_vision_like import checkpoint_reading, checkpointing, init_from, preemption, trainer
from big_vision_like.metrics import read_metrics
from tests.helpers import data_dir_of, tiny_config, tiny_config_file
from tests.test_multiprocess import env, free_port

# A SIGTERM at step 2-3 stops a few steps later (step 4 in the 2-process test
# on 2 loaded cores), well before the end; a short run keeps the three runs of
# the 2-process test (the suite's slowest) quick.
TOTAL, CKPT = 12, 10


def config_of(builder):
    return tiny_config(data_dir_of(builder), total_steps=TOTAL, ckpt_steps=CKPT, evals={})


@pytest.fixture(scope="module")
def config_file(tiny_source, tmp_path_factory):
    """The same config for subprocesses (`--config <file>`) as `config_of` in here."""
    return tiny_config_file(tmp_path_factory.mktemp("preempt_config") / "config.py",
                            data_dir_of(tiny_source), total_steps=TOTAL, ckpt_steps=CKPT,
                            evals={})


@pytest.fixture(scope="module")
def straight(tiny_source, tmp_path_factory):
    """(workdir, final state) of the uninterrupted run."""
    workdir = str(tmp_path_factory.mktemp("straight"))
    return workdir, trainer.train(config_of(tiny_source), workdir)


def command(config_file, workdir, *extra):
    return [sys.executable, "-m", "big_vision_like.train", "--config", config_file,
            "--workdir", str(workdir), *extra]


def start(cmd, log, environ=None) -> subprocess.Popen:
    """stderr to a file: a pipe nobody reads while the test polls could fill and stall
    the run."""
    with open(log, "w") as f:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f, env=environ)


def last_step(workdir) -> int:
    try:
        rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))
                if line.endswith("\n")]
    except FileNotFoundError:
        return 0
    return max((r["step"] for r in rows), default=0)


def wait_for_step(procs, workdir, step: int) -> None:
    deadline = time.time() + 300
    while last_step(workdir) < step:
        assert time.time() < deadline and all(p.poll() is None for p in procs), \
            [p.returncode for p in procs]
        time.sleep(0.02)


def preempted_at(workdir) -> int:
    steps = [r["preempted_at_step"] for r in read_metrics(str(workdir))
             if "preempted_at_step" in r]
    assert len(steps) == 1, steps
    return int(steps[0])


def assert_same_params(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_sigterm_in_process_stops_at_the_next_step_with_a_checkpoint(tiny_source, tmp_path,
                                                                     monkeypatch):
    """Deterministic: SIGTERM to this process during step 3; the run saves 3 and raises
    Preempted; the handler it installed counted the signal instead of dying."""
    real = trainer.train_step.jit_train_step

    def jit_then_signal(*args, **kwargs):
        step_fn = real(*args, **kwargs)

        def step(state, batch):
            if int(state.step) == 2:  # computing step 3
                os.kill(os.getpid(), signal.SIGTERM)
            return step_fn(state, batch)
        return step

    monkeypatch.setattr(trainer.train_step, "jit_train_step", jit_then_signal)
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(preemption.Preempted) as info:
            trainer.train(config_of(tiny_source), str(tmp_path))
    finally:  # kept after a preemption (a SIGTERM while exiting must not kill)
        signal.signal(signal.SIGTERM, before)
    assert info.value.step == 3
    ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"))
    assert ckpt.all_steps() == [3]
    ckpt.close()
    assert preempted_at(tmp_path) == 3
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.slow
def test_signals_during_evaluations_and_start_up_stop_within_seconds(tiny_source, tmp_path,
                                                                    monkeypatch):
    """SIGTERM in a periodic evaluation: the step is saved, the evaluation is not
    written, Preempted(143). SIGINT in the final evaluation of the rerun: Preempted
    (130), the final evaluation owed. A third run only evaluates. SIGINT during
    start-up: nothing saved, Preempted(None, 130). Each stop within seconds."""
    from input_pipeline.run_data import RunData

    c = tiny_config(data_dir_of(tiny_source), ckpt_steps=100)
    c.evals = {"fasteval": c.evals.fasteval}  # 8 batches of 64, every 4 steps
    real = RunData.eval_batches
    plan: dict = {}

    def eval_batches(self, *args, **kwargs):
        for i, batch in enumerate(real(self, *args, **kwargs)):
            if i == 1 and plan.get("signal"):
                plan["sent_at"] = time.time()
                os.kill(os.getpid(), plan.pop("signal"))
            yield batch

    monkeypatch.setattr(RunData, "eval_batches", eval_batches)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        plan["signal"] = signal.SIGTERM  # in the step-4 evaluation
        with pytest.raises(preemption.Preempted) as info:
            trainer.train(c, str(tmp_path / "w"))
        assert (info.value.step, info.value.exit_code) == (4, 143)
        assert time.time() - plan["sent_at"] < 10
        rows = read_metrics(str(tmp_path / "w"))
        assert not [r for r in rows if "fasteval/map@100" in r]  # cut short: not written
        assert preempted_at(tmp_path / "w") == 4

        plan["signal"] = signal.SIGINT  # in the final evaluation, after resuming at 4
        with pytest.raises(preemption.Preempted) as info:
            trainer.train(c, str(tmp_path / "w"))
        assert (info.value.step, info.value.exit_code) == (8, 130)
        assert "interrupted: checkpoint 8 saved" in str(info.value)
        assert time.time() - plan["sent_at"] < 10
        ckpt = checkpointing.Checkpointer(str(tmp_path / "w" / "checkpoints"))
        assert ckpt.all_steps() == [4, 8]
        ckpt.close()

        trainer.train(c, str(tmp_path / "w"))  # the owed final evaluation only
        rows = read_metrics(str(tmp_path / "w"))
        assert [r["step"] for r in rows if "fasteval/map@100" in r] == [8]
        assert [r["step"] for r in rows if "train/loss" in r] == list(range(1, 9))

        def init_then_interrupt(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            return real_init(*args, **kwargs)

        real_init = trainer.train_step.create_train_state
        monkeypatch.setattr(trainer.train_step, "create_train_state", init_then_interrupt)
        with pytest.raises(preemption.Preempted) as info:
            trainer.train(c, str(tmp_path / "startup"))
        assert (info.value.step, info.value.exit_code) == (None, 130)
        assert "stopped before the first step, nothing to save" in str(info.value)
        assert not (tmp_path / "startup" / "metrics.jsonl").exists()
        assert not list((tmp_path / "startup").glob("checkpoints/[0-9]*"))
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@pytest.mark.slow
def test_ctrl_c_during_start_up_exits_130_in_seconds_with_one_line(config_file, tmp_path):
    """Through the command line: Ctrl-C while the run starts (imports, data, model)
    ends it with status 130 and one line, not a traceback."""
    proc = start(command(config_file, tmp_path / "w"), tmp_path / "log")
    time.sleep(3)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    err = (tmp_path / "log").read_text()
    # 130, or killed by SIGINT when it lands before the handlers (both are $? = 130
    # in a shell).
    assert proc.returncode in (130, -signal.SIGINT), err[-3000:]
    assert time.time() - sent < 10 + 5  # the bound, plus a busy machine's start-up slice
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] in (
        "interrupted (Ctrl-C) before training started; nothing to save.",
        "interrupted: stopped before the first step, nothing to save; rerun the same "
        "command to start.")


@pytest.mark.slow
def test_sigterm_then_more_during_the_save_exits_143_and_resumes_exactly(
        tiny_source, config_file, straight, tmp_path):
    """A real process: SIGTERM once training is under way, then SIGTERM every 10 ms
    until it exits (so some land during the save). Exit 143, the checkpoint at
    the stop step restores, and the rerun ends bitwise where an uninterrupted
    run ends, with the same loss at every step."""
    workdir = tmp_path / "preempted"
    proc = start(command(config_file, workdir), tmp_path / "log")
    wait_for_step([proc], workdir, 2)
    proc.send_signal(signal.SIGTERM)
    while proc.poll() is None:
        time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
    err = (tmp_path / "log").read_text()
    assert proc.returncode == 143, err[-3000:]
    step = preempted_at(workdir)
    assert 2 < step < TOTAL and "more SIGTERM(s) while stopping and saving, ignored" in err
    ckpt = checkpointing.Checkpointer(str(workdir / "checkpoints"))
    assert ckpt.latest_step() == step  # the periodic ones before it: only multiples of 10
    assert set(ckpt.all_steps()) - {step} <= {s for s in range(CKPT, step, CKPT)}
    ckpt.close()
    assert checkpoint_reading.load_state(str(workdir / "checkpoints" / str(step)))["params"]

    resumed = trainer.train(config_of(tiny_source), str(workdir))
    straight_dir, straight_state = straight
    assert_same_params(resumed.params, straight_state.params)
    losses = [(r["step"], r["train/loss"]) for r in read_metrics(str(workdir))]
    assert losses == [(r["step"], r["train/loss"]) for r in read_metrics(straight_dir)]


@pytest.mark.slow
def test_sigterm_to_one_of_two_processes_stops_both_at_one_step(tiny_source, config_file,
                                                                 tmp_path):
    """2 processes x 4 CPU devices over gloo, SIGTERM to process 1 only: JAX's
    preemption service makes both save at the same step and exit 143. Rerun as
    two processes, the run ends bitwise where an uninterrupted 2-process run
    ends (each process reads its own shard of the data, so a 1-process run is
    no reference)."""
    def run(workdir, name):
        address = f"127.0.0.1:{free_port()}"
        return [start(command(config_file, workdir, f"--coordinator_address={address}",
                              "--num_processes=2", f"--process_id={i}"),
                      tmp_path / f"{name}{i}", env(4)) for i in range(2)]

    def wait(procs, name, codes):
        for p in procs:
            p.wait(timeout=300)
        errs = [(tmp_path / f"{name}{i}").read_text() for i in range(2)]
        assert [p.returncode for p in procs] == codes, [e[-3000:] for e in errs]
        return errs

    workdir = tmp_path / "run"
    procs = run(workdir, "preempted")
    wait_for_step(procs, workdir, 2)
    procs[1].send_signal(signal.SIGTERM)
    # Only now, with the programs compiled and in the compilation cache: two runs
    # started together would each compile them, on the same two cores.
    straight_procs = run(tmp_path / "straight", "straight")
    errs = wait(procs, "preempted", [143, 143])
    step = preempted_at(workdir)
    assert 2 < step < TOTAL
    assert all(f"checkpoint {step} saved" in e for e in errs)  # both stopped there
    ckpt = checkpointing.Checkpointer(str(workdir / "checkpoints"))
    assert ckpt.latest_step() == step
    ckpt.close()

    resumed = run(workdir, "resumed")
    wait(straight_procs, "straight", [0, 0])
    wait(resumed, "resumed", [0, 0])
    # Read back here, in one process (on one device: saved over 2 x 4): the last
    # checkpoint, which a rerun of a finished run restores, holds the end state.
    finals = []
    for run_dir in (workdir, tmp_path / "straight"):
        ckpt = checkpointing.Checkpointer(str(run_dir / "checkpoints"))
        assert ckpt.latest_step() == TOTAL
        ckpt.close()
        finals.append(init_from.load_variables(str(run_dir / "checkpoints" / str(TOTAL))))
    assert finals[0].keys() == finals[1].keys()
    for path, value in finals[0].items():  # parameters and batch-norm statistics
        np.testing.assert_array_equal(value, finals[1][path], err_msg=path)


def _signal_one_of_two_workers(worker: str, tmp_path, service: str, sig) -> list[dict]:
    """Starts the worker (tests/multiprocess/) as 2 processes, sends `sig` to process 1
    once it created its ready file, returns each process's last JSON line."""
    worker = os.path.join(os.path.dirname(__file__), "multiprocess", worker)
    address, ready = f"127.0.0.1:{free_port()}", tmp_path / "ready"
    e = dict(env(1), JAX_ENABLE_PREEMPTION_SERVICE=service)
    procs = [subprocess.Popen([sys.executable, worker, address, "2", str(i), str(ready)],
                              env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    deadline = time.time() + 120
    while not ready.exists():
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    procs[1].send_signal(sig)
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-3000:] for _, err in outs]
    got = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert {g["mode"] for g in got} == {"jax" if service == "true" else "signal"}
    return got


@pytest.mark.parametrize("service", ["true", "false"])
def test_two_processes_agree_on_the_stop_step(tmp_path, service):
    """SIGTERM to process 1 of 2: both stop at the same step, through JAX's
    preemption service or, with it turned off, the allgather of the flag."""
    got = _signal_one_of_two_workers("preempt_watch.py", tmp_path, service, signal.SIGTERM)
    assert got[0]["step"] == got[1]["step"] > 5


@pytest.mark.parametrize("service,sig", [("false", signal.SIGTERM), ("true", signal.SIGINT)],
                         ids=["sigterm_allgather", "sigint_with_jax_service"])
def test_two_processes_stop_an_evaluation_at_one_batch(tmp_path, service, sig):
    """A signal to process 1 of 2 during an evaluation: both stop it before the
    same batch (the evaluation's collectives would hang if one went on). With
    JAX's service a SIGTERM is only told at training steps (the documented
    limit), so the service case sends Ctrl-C."""
    got = _signal_one_of_two_workers("preempt_eval.py", tmp_path, service, sig)
    assert got[0]["batch"] == got[1]["batch"] > 5
