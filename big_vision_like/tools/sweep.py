"""Runs a set of variants of one config: the data-size, capacity and label-space studies.

    python -m big_vision_like.tools.sweep --config configs/demo.py --workdir W \\
        --sweep input.data.subset_fraction=0.1,0.3,1.0 --sweep model.depth=50,101 \\
        [--zip] [--config.batch_size=64 ...] [--mode run|commands|slurm]

Axes form a product (or are zipped with --zip). An axis's values are split at
commas outside brackets and quotes, and read as Python literals where they
parse ('[0, 1],[0, 1, 2]' is two lists; '/a/b' stays a string). Each variant is
`W/<name>`, the name made of its overrides ('subset_fraction=0.1,depth=50').
`W/sweep.json` lists every run: name, overrides, workdir, status.

--mode run trains the runs one after another in this process; a finished one
gets a DONE marker and is never run again, so the same command after a kill
skips the finished runs and resumes the interrupted one from its last
checkpoint. --mode commands writes W/commands.sh, one
`python -m big_vision_like.train ...` line per run; --mode slurm also writes
W/sweep.sbatch, an array job whose task i runs `sweep --workdir W --run_index i`:
run i's command read back from W/sweep.json, never re-parsed by a shell.
Every run's config is built (unknown fields and bad values found) before
anything is run or written.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import hashlib
import itertools
import json
import logging as pylogging
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from absl import logging

from big_vision_like import filesystem as fs
from big_vision_like.config.cli import load_config
from big_vision_like.tools.sweep_scripts import write_commands, write_sbatch

DONE = "DONE"
MANIFEST = "sweep.json"
_MAX_NAME = 120


@dataclasses.dataclass(frozen=True)
class Axis:
    field: str
    values: tuple[Any, ...]  # as Python literals
    texts: tuple[str, ...]  # as given to --config.<field>=


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    overrides: dict[str, Any]
    args: tuple[str, ...]  # --config.<field>=<text>
    workdir: str


def split_values(text: str) -> list[str]:
    """Splits at commas that are outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def refuse_control_characters(what: str, text: str) -> None:
    """A newline or other control character in a value would split commands.sh's
    lines (runs skipped, a fragment run as a command): refused."""
    bad = sorted({repr(c) for c in text if ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ValueError(f"{what} holds the control character(s) {', '.join(bad)}; "
                         "sweep values, overrides and paths must be printable.")


def parse_axis(spec: str) -> Axis:
    """'model.depth=50,101' -> Axis('model.depth', (50, 101), ('50', '101'))."""
    field, sep, rest = spec.partition("=")
    field = field.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", field):
        raise ValueError(f"--sweep {spec!r}: give field=value1,value2,... with a dotted "
                         "config field, e.g. --sweep model.depth=50,101.")
    refuse_control_characters(f"--sweep {spec!r}", spec)
    texts = split_values(rest)
    if any(not t for t in texts):
        raise ValueError(f"--sweep {spec!r} has an empty value; separate values by "
                         "single commas.")
    values = []
    for text in texts:
        try:
            values.append(ast.literal_eval(text))
        except (ValueError, SyntaxError):
            values.append(text)
    if len(set(map(repr, values))) != len(values):
        raise ValueError(f"--sweep {spec!r} repeats a value.")
    # A quoted string goes to config_flags unquoted, as the shell would pass it.
    texts = [v if isinstance(v, str) else t for v, t in zip(values, texts)]
    return Axis(field, tuple(values), tuple(texts))


def _label(value: Any) -> str:
    return value if isinstance(value, str) else repr(value).replace(" ", "")


def run_name(fields: Sequence[str], values: Sequence[Any], labels: dict[str, str]) -> str:
    """'subset_fraction=0.1,depth=50': characters other than letters, digits and
    '._=,+-' become '_'; a name too long is cut and given a hash of the whole."""
    raw = ",".join(f"{labels[f]}={_label(v)}" for f, v in zip(fields, values))
    name = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", raw).lstrip(".")
    if len(name) > _MAX_NAME:
        name = name[:_MAX_NAME - 9] + "-" + hashlib.sha1(raw.encode()).hexdigest()[:8]
    return name


def plan(axes: Sequence[Axis], workdir: str, zip_axes: bool = False) -> list[Run]:
    """The runs of a sweep, in order: the product of the axes (the last varies
    fastest), or their zip."""
    if not axes:
        raise ValueError("give at least one --sweep field=value1,value2,...")
    fields = [a.field for a in axes]
    if len(set(fields)) != len(fields):
        raise ValueError(f"--sweep fields {fields}: each field once.")
    leaves = [f.rsplit(".", 1)[-1] for f in fields]
    # The last part of a field names it, unless two fields share it.
    labels = {f: leaf if leaves.count(leaf) == 1 else f for f, leaf in zip(fields, leaves)}
    if zip_axes:
        if len({len(a.values) for a in axes}) != 1:
            raise ValueError("--zip needs axes of one length, not "
                             f"{ {a.field: len(a.values) for a in axes} }.")
        combos = list(zip(*(range(len(a.values)) for a in axes)))
    else:
        combos = list(itertools.product(*(range(len(a.values)) for a in axes)))
    runs = []
    for combo in combos:
        values = [a.values[i] for a, i in zip(axes, combo)]
        name = run_name(fields, values, labels)
        runs.append(Run(name=name, overrides=dict(zip(fields, values)),
                        args=tuple(f"--config.{a.field}={a.texts[i]}"
                                   for a, i in zip(axes, combo)),
                        workdir=fs.join(workdir, name)))
    names = [r.name for r in runs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(f"runs {clash} would share a workdir: their values differ only "
                         "in characters a name cannot hold; give distinct values.")
    return runs


def check_configs(config_file: str, base_args: Sequence[str], runs: Sequence[Run]) -> None:
    """Builds every run's config, so that a bad field fails before any run starts."""
    base, _ = load_config(config_file, base_args)
    for field in dict.fromkeys(f for run in runs for f in run.overrides):
        check_field(base, field, config_file)
    for run in runs:
        build_config(config_file, base_args, run)


def check_field(config, field: str, config_file: str) -> None:
    """An unknown field is named, with the nearest fields the config has."""
    node, done = config, []
    for part in field.split("."):
        keys = list(node.keys()) if hasattr(node, "keys") else []
        if part not in keys:
            where = ".".join(done) or "the top level"
            near = difflib.get_close_matches(part, keys, n=3)
            hint = f"did you mean {', '.join('.'.join([*done, k]) for k in near)}? " \
                if near else ""
            raise ValueError(
                f"--sweep {field}: {config_file} has no field {field} ({where} has "
                f"{sorted(keys)}); {hint}sweep a field the config has (`python -m "
                f"big_vision_like.train --config {config_file} --workdir . --print_config` "
                "lists them).")
        node, done = node[part], [*done, part]


def build_config(config_file: str, base_args: Sequence[str], run: Run):
    try:
        config, _ = load_config(config_file, [*base_args, *run.args])
    except Exception as e:  # config_flags raises AttributeError, KeyError, flags.Error...
        fields = [a.split("=", 1)[0][len("--config."):] for a in [*base_args, *run.args]]
        raise ValueError(
            f"run {run.name}: {config_file} with --config.<field> overrides of {fields} "
            f"fails: {str(e).strip()!s}. Sweep only fields the config has, with values "
            f"of their type (`python -m big_vision_like.train --config {config_file} "
            "--workdir . --print_config` lists them).") from e
    return config


def is_done(run: Run) -> bool:
    return fs.exists(fs.join(run.workdir, DONE))


class Manifest:
    """W/sweep.json: the sweep's command and its runs' status (pending, running,
    done, failed). A DONE file in a run's workdir is what makes it done."""

    def __init__(self, workdir: str, config_file: str, base_args: Sequence[str],
                 runs: Sequence[Run]):
        self.path = fs.join(workdir, MANIFEST)
        old = _read_json(self.path) if fs.exists(self.path) else {}
        given = {"config": config_file, "base_overrides": list(base_args)}
        for key, value in given.items():
            if key in old and old[key] != value:
                raise ValueError(
                    f"{self.path} is a sweep with {key}={old[key]!r}, not {value!r}; its "
                    "finished runs would not match. Use another --workdir.")
        previous = {r["name"]: r.get("status") for r in old.get("runs", [])}
        self.data = dict(given, runs=[
            {"name": r.name, "overrides": r.overrides, "args": list(r.args),
             "workdir": r.workdir,
             "status": "done" if is_done(r) else previous.get(r.name) or "pending"}
            for r in runs])
        self.save()

    def set(self, name: str, status: str, error: str | None = None) -> None:
        for row in self.data["runs"]:
            if row["name"] == name:
                row["status"] = status
                row.pop("error", None)
                if error:
                    row["error"] = error
        self.save()

    def save(self) -> None:
        fs.write_atomic(self.path, json.dumps(self.data, indent=2, default=repr))


def _read_json(path: str) -> dict:
    with fs.open(path) as f:
        return json.load(f)


def run_sweep(config_file: str, base_args: Sequence[str], runs: Sequence[Run],
              workdir: str, train_fn: Callable[..., Any] | None = None) -> None:
    """Trains the runs not done yet, one after another, with
    `train_fn(config, run_workdir)` (default `trainer.train`, which resumes a
    run from its last checkpoint). A kill leaves the run it stopped 'running';
    an error marks it 'failed' and ends the sweep."""
    check_configs(config_file, base_args, runs)
    manifest = Manifest(workdir, config_file, base_args, runs)
    if train_fn is None:
        from big_vision_like import trainer

        train_fn = trainer.train
    for i, run in enumerate(runs):
        if is_done(run):
            print(f"[{i + 1}/{len(runs)}] {run.name}: done before, skipped", flush=True)
            continue
        print(f"[{i + 1}/{len(runs)}] {run.name}: training in {run.workdir}", flush=True)
        manifest.set(run.name, "running")
        config = build_config(config_file, base_args, run)
        try:
            train_fn(config, run.workdir)
        except Exception as e:
            manifest.set(run.name, "failed", f"{type(e).__name__}: {e}")
            raise
        fs.makedirs(run.workdir)
        with fs.open(fs.join(run.workdir, DONE), "w") as f:
            f.write("finished; the sweep does not run it again. Delete this file to "
                    "let it resume.\n")
        manifest.set(run.name, "done")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="python -m big_vision_like.tools.sweep",
                                description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--config", help="Config file (as for train.py).")
    p.add_argument("--workdir", required=True, help="The sweep's folder.")
    p.add_argument("--sweep", action="append", default=[],
                   help="field=value1,value2,... (repeat for more axes).")
    p.add_argument("--run_index", type=int,
                   help="Train run i of the sweep in --workdir, as its sweep.json says "
                        "(what sweep.sbatch's array task i runs).")
    p.add_argument("--zip", action="store_true", help="Zip the axes, not their product.")
    p.add_argument("--mode", choices=("run", "commands", "slurm"), default="run")
    p.add_argument("--python", default="python", help="Interpreter in commands.sh.")
    p.add_argument("--sbatch", action="append", default=[],
                   help="Extra #SBATCH option for --mode slurm, e.g. --sbatch=--gres=gpu:8.")
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if not (a.startswith("--config.") and "=" in a)]
    if bad:
        p.error(f"unknown arguments {bad}; config overrides are --config.field=value.")
    if args.run_index is None and (args.config is None or not args.sweep):
        p.error("--config and --sweep are required (only --run_index reads them from "
                "the sweep's sweep.json).")
    return args, rest


def train_argv(workdir: str, index: int, python: str = sys.executable) -> list[str]:
    """The train.py command of run `index` of the sweep in `workdir`, from its
    sweep.json: what each task of sweep.sbatch runs."""
    path = fs.join(workdir, MANIFEST)
    if not fs.exists(path):
        raise ValueError(f"{path} does not exist; --run_index starts a run of a sweep "
                         "written by --mode commands or slurm.")
    manifest = _read_json(path)
    runs = manifest["runs"]
    if not 0 <= index < len(runs):
        raise ValueError(f"--run_index {index}: {path} has runs 0 to {len(runs) - 1}.")
    run = runs[index]
    return [python, "-m", "big_vision_like.train", "--config", manifest["config"],
            "--workdir", run["workdir"], *manifest["base_overrides"], *run["args"]]


def main(argv: Sequence[str] | None = None) -> None:
    args, base_args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.run_index is not None:
            command = train_argv(args.workdir, args.run_index)
            os.execv(command[0], command)  # train.py's exit status is the task's
            return
        for what, text in (("--workdir", args.workdir), ("--config", args.config),
                           ("--python", args.python),
                           *(("override", a) for a in base_args)):
            refuse_control_characters(f"{what} {text!r}", text)
        runs = plan([parse_axis(s) for s in args.sweep], args.workdir, args.zip)
        check_configs(args.config, base_args, runs)
    except ValueError as e:
        sys.exit(f"error: {e}")
    if args.mode == "run":
        logging.use_absl_handler()  # as app.run would: absl format, filters below apply
        logging.set_verbosity(logging.INFO)  # the trainer's progress, as train.py shows it
        logging.get_absl_handler().addFilter(  # orbax logs every save at INFO
            lambda r: r.levelno >= pylogging.WARNING or "/orbax/" not in r.pathname)
        run_sweep(args.config, base_args, runs, args.workdir)
        return
    Manifest(args.workdir, args.config, base_args, runs)
    commands = fs.join(args.workdir, "commands.sh")
    write_commands(commands, args.python, args.config, base_args, runs)
    print(f"{commands}: {len(runs)} runs")
    if args.mode == "slurm":
        sbatch = fs.join(args.workdir, "sweep.sbatch")
        write_sbatch(sbatch, args.python, fs.absolute(args.workdir), len(runs), os.getcwd(),
                     args.sbatch)
        print(f"submit with: sbatch {sbatch}")


if __name__ == "__main__":
    main()
