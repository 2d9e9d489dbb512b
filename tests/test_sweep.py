"""tools/sweep.py: planning, resuming a killed sweep, commands.sh and the Slurm array."""

import json
import os
import shlex
import subprocess

import pytest

from big_vision_like.config.cli import load_config
from big_vision_like.tools import sweep

CONFIG = "configs/demo.py"


def _runs(workdir, *specs, zip_axes=False):
    return sweep.plan([sweep.parse_axis(s) for s in specs], str(workdir), zip_axes)


def test_axes_product_zip_and_names(tmp_path):
    runs = _runs(tmp_path, "input.data.data_dir=/a/b,'c,d'", "model.depth=18,26")
    assert [r.name for r in runs] == ["data_dir=_a_b,depth=18", "data_dir=_a_b,depth=26",
                                      "data_dir=c,d,depth=18", "data_dir=c,d,depth=26"]
    assert runs[2].overrides == {"input.data.data_dir": "c,d", "model.depth": 18}
    assert runs[2].args == ("--config.input.data.data_dir=c,d", "--config.model.depth=18")
    assert runs[0].workdir == os.path.join(tmp_path, "data_dir=_a_b,depth=18")
    zipped = _runs(tmp_path, "model.depth=18,26", "total_steps=10,20", zip_axes=True)
    assert [r.overrides for r in zipped] == [{"model.depth": 18, "total_steps": 10},
                                             {"model.depth": 26, "total_steps": 20}]
    assert sweep.parse_axis("keep_ckpt_steps=(1, 2),(3,)").values == ((1, 2), (3,))
    with pytest.raises(ValueError, match="one length"):
        _runs(tmp_path, "model.depth=18,26", "total_steps=10", zip_axes=True)
    with pytest.raises(ValueError, match="repeats a value"):
        sweep.parse_axis("model.depth=18,18")


def test_unknown_field_or_bad_value_is_named_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match=r"no field model\.dept .*did you mean model\.depth"):
        sweep.check_configs(CONFIG, [], _runs(tmp_path, "model.dept=18,26"))
    with pytest.raises(ValueError, match=r"run depth=2\.5: .*model\.depth=2\.5"):
        sweep.check_configs(CONFIG, [], _runs(tmp_path, "model.depth=18,2.5"))
    assert not os.listdir(tmp_path)


class Killed(KeyboardInterrupt):
    pass


def test_killed_sweep_resumes_and_skips_finished_runs(tmp_path):
    runs = _runs(tmp_path, "model.depth=18,26,34")
    base = ["--config.total_steps=7"]
    calls = []

    def killed_on_second(config, workdir):
        calls.append((workdir, config.model.depth, config.total_steps))
        os.makedirs(workdir, exist_ok=True)
        if len(calls) == 2:
            raise Killed()

    with pytest.raises(Killed):
        sweep.run_sweep(CONFIG, base, runs, str(tmp_path), train_fn=killed_on_second)
    assert calls == [(runs[0].workdir, 18, 7), (runs[1].workdir, 26, 7)]
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["done", "running", "pending"]
    assert manifest["runs"][1]["overrides"] == {"model.depth": 26}

    calls.clear()
    sweep.run_sweep(CONFIG, base, runs, str(tmp_path), train_fn=lambda c, w: calls.append(
        (w, c.model.depth, c.total_steps)))
    assert calls == [(runs[1].workdir, 26, 7), (runs[2].workdir, 34, 7)]
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["done"] * 3

    calls.clear()
    sweep.run_sweep(CONFIG, base, runs, str(tmp_path), train_fn=lambda c, w: calls.append(w))
    assert calls == []
    with pytest.raises(ValueError, match="Use another --workdir"):
        sweep.run_sweep(CONFIG, ["--config.total_steps=8"], runs, str(tmp_path),
                        train_fn=lambda c, w: None)


def test_failed_run_is_recorded_and_stops_the_sweep(tmp_path):
    runs = _runs(tmp_path, "model.depth=18,26")

    def fails(config, workdir):
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        sweep.run_sweep(CONFIG, [], runs, str(tmp_path), train_fn=fails)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["runs"][0]["status"] == "failed"
    assert manifest["runs"][0]["error"] == "RuntimeError: diverged"
    assert manifest["runs"][1]["status"] == "pending"


def test_commands_and_slurm_array(tmp_path):
    workdir = str(tmp_path / "w")
    fake_python = tmp_path / "fake python"  # prints its arguments, one a line
    fake_python.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    fake_python.chmod(0o755)
    sweep.main(["--config", CONFIG, "--workdir", workdir, "--mode", "slurm",
                "--sweep", "model.depth=18,26", "--sweep", "input.data.data_dir=/x y,/z",
                "--config.batch_size=64", "--python", str(fake_python),
                "--sbatch=--gres=gpu:8"])
    commands = os.path.join(workdir, "commands.sh")
    subprocess.run(["bash", "-n", commands], check=True, timeout=60)
    lines = open(commands).read().splitlines()
    runs = _runs(workdir, "model.depth=18,26", "input.data.data_dir=/x y,/z")
    assert len(lines) == len(runs) == 4
    for line, run in zip(lines, runs):
        argv = shlex.split(line)
        assert argv[:7] == [str(fake_python), "-m", "big_vision_like.train", "--config", CONFIG,
                            "--workdir", run.workdir]
        overrides = argv[7:]
        assert overrides == ["--config.batch_size=64", *run.args]
        config, _ = load_config(CONFIG, overrides)  # as train.py would parse them
        assert config.model.depth == run.overrides["model.depth"]
        assert config.input.data.data_dir == run.overrides["input.data.data_dir"]
        assert config.batch_size == 64

    sbatch = os.path.join(workdir, "sweep.sbatch")
    subprocess.run(["bash", "-n", sbatch], check=True, timeout=60)
    text = open(sbatch).read()
    assert "#SBATCH --array=0-3\n" in text and "#SBATCH --gres=gpu:8\n" in text
    # Array task 2 starts run 2 through the tool, which reads its command back from
    # sweep.json: the third line of commands.sh.
    out = subprocess.run(["bash", sbatch], env={**os.environ, "SLURM_ARRAY_TASK_ID": "2"},
                         check=True, capture_output=True, text=True, timeout=60).stdout
    assert out.splitlines() == ["-m", "big_vision_like.tools.sweep", "--workdir",
                                os.path.abspath(workdir), "--run_index", "2"]
    assert sweep.train_argv(workdir, 2, str(fake_python)) == shlex.split(lines[2])
    manifest = json.loads(open(os.path.join(workdir, "sweep.json")).read())
    assert [r["status"] for r in manifest["runs"]] == ["pending"] * 4



def test_hostile_values_reach_train_py_as_plain_arguments(tmp_path, monkeypatch):
    """Shell syntax in values and paths is data, never run; control characters,
    which would split commands.sh's lines, are refused."""
    (tmp_path / "configs").symlink_to(os.path.abspath("configs"))
    monkeypatch.chdir(tmp_path)  # where the scripts run: an injection would write here
    workdir = str(tmp_path / "w $(touch pwned1) `touch pwned2`")
    fake_python = tmp_path / "python"  # prints its arguments, one a line
    fake_python.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    fake_python.chmod(0o755)
    hostile = "/d;touch pwned3 && echo $(touch pwned4)"
    sweep.main(["--config", CONFIG, "--workdir", workdir, "--mode", "slurm",
                "--sweep", f"input.data.data_dir='{hostile}',/plain", "--python",
                str(fake_python)])
    sbatch = os.path.join(workdir, "sweep.sbatch")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    for task in ("0", "1"):
        out = subprocess.run(["bash", sbatch], env={**env, "SLURM_ARRAY_TASK_ID": task},
                             check=True, capture_output=True, text=True, timeout=60).stdout
        assert out.splitlines()[-1] == task and os.path.abspath(workdir) in out.splitlines()
    argv = sweep.train_argv(workdir, 0, "python")
    assert argv[-1] == f"--config.input.data.data_dir={hostile}"
    executed = []
    monkeypatch.setattr(os, "execv", lambda path, args: executed.append(args))
    sweep.main(["--workdir", workdir, "--run_index", "0"])
    assert executed[0][1:] == argv[1:]
    for line in open(os.path.join(workdir, "commands.sh")).read().splitlines():
        subprocess.run(["bash", "-c", "set -- " + line.split(" ", 1)[1]], check=True,
                       cwd=tmp_path, timeout=60)  # the shell parses a line: runs nothing
    assert not list(tmp_path.glob("pwned*"))

    for args, what in (
            (["--sweep", "model.depth=18,26\necho pwned"], "--sweep"),
            (["--sweep", "model.depth=18", "--config.input.data.data_dir=/a\rb"],
             "override"),
            (["--sweep", "model.depth=18", "--workdir", "w\nx"], "--workdir")):
        argv = ["--config", CONFIG, "--workdir", str(tmp_path / "v"), "--mode", "slurm",
                *args]
        with pytest.raises(SystemExit, match=rf"error: {what} .*control character"):
            sweep.main(argv)
    with pytest.raises(SystemExit, match=r"--run_index 5: .* has runs 0 to 1"):
        sweep.main(["--workdir", workdir, "--run_index", "5"])
