"""One command-line style: every entry point parses its flags with argparse, so
--help shows every flag it takes; the config's own fields (--config.<field>) go
through config/cli.py."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("big_vision_like", "input_pipeline", "evaluators", "studies", "benchmarks")


def _is_entry_point(path: pathlib.Path) -> bool:
    return any(isinstance(n, ast.If) and "__name__" in ast.unparse(n.test)
               for n in ast.parse(path.read_text()).body)


def _entry_points() -> list[pathlib.Path]:
    return [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")
            if _is_entry_point(p)]


def test_no_command_defines_absl_flags():
    """absl parses only the config's own fields, inside config/cli.py."""
    for path in [*_entry_points(), ROOT / "studies/common.py"]:
        calls = {ast.unparse(n.func) for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call)}
        assert not any(c.startswith(("flags.DEFINE", "app.run")) for c in calls), (
            f"{path}: absl flags; use argparse as every other command does")


_HELP = """
import contextlib, io, runpy, sys
for name in sys.argv[1:]:
    sys.argv = [name, "--help"]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_module(name, run_name="__main__")
    except SystemExit as e:
        assert e.code == 0, (name, e.code)
    else:
        raise AssertionError(f"{name} --help did not exit")
    assert out.getvalue().startswith("usage: "), (name, out.getvalue()[:200])
    print(name, "ok")
"""


def test_every_command_answers_help():
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in _entry_points()]
    assert len(names) >= 20
    out = subprocess.run([sys.executable, "-c", _HELP, *names], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count(" ok") == len(names)


def test_train_help_shows_every_flag():
    out = subprocess.run([sys.executable, "-m", "big_vision_like.train", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    for flag in ("--config", "--workdir", "--coordinator_address", "--num_processes",
                 "--process_id", "--resume_step", "--preemption_exit_code", "--print_config",
                 "--config.<field>=<value>"):
        assert flag in out.stdout, flag


def test_a_misspelt_config_field_is_one_line_with_the_right_name(tmp_path):
    out = subprocess.run([sys.executable, "-m", "big_vision_like.train", "--config",
                          "configs/demo.py", "--workdir", str(tmp_path), "--config.batch_sise=3"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1].endswith(
        "error: configs/demo.py: 'batch_sise' Did you mean \"batch_size\" instead of "
        "\"batch_sise\"?")
    assert "Traceback" not in out.stderr
