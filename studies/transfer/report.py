"""The transfer study's results as Markdown tables and JSON."""

from __future__ import annotations

import json
from typing import Any

from big_vision_like import filesystem as fs

SETTING_NAMES = {
    "scratch": "random initialisation (trained from scratch)",
    "frozen": "pre-trained, frozen conv1-conv5, trained head",
    "finetune": "pre-trained, full fine-tuning",
}
FEATURE_NAMES = {"pretrained": "pre-trained", "random": "random (untrained network)"}
SHOTS = ("1shot", "5shot", "10shot", "25shot")


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def markdown(results: dict[str, Any]) -> str:
    """Two tables: test top-1 per training setting; few-shot and linear-probe
    accuracy of pre-trained vs random features."""
    lines = ["| target | setting | test top-1 |", "|---|---|---|"]
    for target, res in results["targets"].items():
        for setting, name in SETTING_NAMES.items():
            if setting in res["train"]:
                lines.append(f"| {target} | {name} | {_num(res['train'][setting])} |")
        lines.append(f"| {target} | majority class (no training) | {_num(res['majority'])} |")
    lines += ["", "| target | features | " + " | ".join(s.replace("shot", "-shot")
                                                     for s in SHOTS) + " | linear probe |",
              "|---|---|" + "---|" * (len(SHOTS) + 1)]
    for target, res in results["targets"].items():
        for kind, name in FEATURE_NAMES.items():
            got = res["features"].get(kind)
            if got is not None:
                cells = [_num(got.get(s)) for s in SHOTS] + [_num(got.get("linear_probe"))]
                lines.append(f"| {target} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_again(workdir: str) -> str:
    """results.md of a finished study, rendered again from its results.json alone."""
    with fs.open(fs.join(workdir, "results.json")) as f:
        text = markdown(json.load(f))
    with fs.open(fs.join(workdir, "results.md"), "w") as f:
        f.write(text)
    return text


def write(workdir: str, results: dict[str, Any]) -> str:
    """Writes results.json and results.md into the workdir; returns the Markdown."""
    with fs.open(fs.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    return report_again(workdir)
