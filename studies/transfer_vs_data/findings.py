"""The paper's findings, one by one, against what the miniature measured.

Each verdict follows a stated rule on the intervals, never a reading by eye:
- a trend ("grows with data") agrees when the 95% interval of the log-linear
  slope lies above 0, disagrees when it lies below, and is inconclusive when
  it holds 0; the curve form that best predicts the held-out largest size is
  named beside it (big_vision_like/tools/curve_forms.py), so "log-linear" is
  claimed only where that form predicts as well as the others;
- an ordering ("fine-tuning beats frozen features at every size") agrees when
  at every size the fine-tuned mean is above the frozen one with the seeds'
  95% intervals apart, partly when the means are ordered but intervals touch,
  and disagrees otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from big_vision_like.tools import collect
from big_vision_like.tools.curve_forms import held_out_predictions

# (curve key in the report, the curve's setting (None: all points), the paper's claim)
TRENDS = (
    ("pre-training/fasteval/map@100", None,
     "Sec. 4: performance grows logarithmically with the volume of training data "
     "(here: the pre-training task itself)"),
    ("detection/test/AP", "fine-tuned", "Fig. 4: detection AP grows logarithmically with "
                                        "pre-training data, fine-tuned"),
    ("detection/test/AP", "frozen before conv5", "Fig. 4: ... and with the body frozen "
                                                 "before conv5, 'particularly' so"),
    ("segmentation/test/miou", "fine-tuned", "Fig. 6: segmentation mIoU grows "
                                             "logarithmically with pre-training data"),
    ("segmentation/test/miou", "frozen before conv5", "Fig. 6 (our addition): the same with "
                                                      "the body frozen"),
    ("digits/test/prec@1", "fine-tuned", "Sec. 5.1: fine-tuned classification on a new "
                                         "task gains from more pre-training data"),
    ("pre-training/digits_probe/accuracy", None,
     "Sec. 1: better representations: frozen features (linear probe) gain from data"),
    ("pre-training/digits_fewshot/10shot", None, "... and so does 10-shot transfer"),
    ("pre-training, compute-matched/digits_probe/accuracy", None,
     "Control for the probe: the same probe when every size trains the same steps "
     "(does longer training, not more data, move it?)"),
    ("probes/probe_conv4/accuracy", None,
     "Control for the probe: a probe on conv4's features, before the last stage "
     "(is the last stage specialised to the pre-training labels?)"),
)
ORDERINGS = (
    ("detection/test/AP", "Fig. 4: fine-tuning is significantly better than frozen "
                          "features at every data size"),
    ("segmentation/test/miou", "(our addition) the same for segmentation"),
)


def _trend(points: Sequence[collect.Point]) -> tuple[str, str]:
    xs = {p.examples for p in points}
    if len(xs) < 2:
        return "not measured", "needs two data sizes"
    fit = collect.fits_of(points)
    f = next(iter(fit.values()))
    if f is None or not np.isfinite(f.b_lo):
        return "inconclusive", f"slope {f.b:+.4f} per 10x with no interval (too few runs)"
    if f.b_lo > 0:
        verdict = "agrees"
    elif f.b_hi < 0:
        verdict = "disagrees"
    else:
        verdict = "inconclusive"
    text = f"slope {f.b:+.4f} per 10x [{f.b_lo:+.4f}, {f.b_hi:+.4f}]"
    if len(xs) >= 3:
        forms = held_out_predictions([p.examples for p in points], [p.value for p in points])
        best = min((h for h in forms if np.isfinite(h.predicted)), key=lambda h: abs(h.error))
        text += f"; the largest size is best predicted by the {best.form} form"
        log = next(h for h in forms if h.form == "log-linear")
        if verdict == "agrees" and best.form != "log-linear" and not log.within:
            verdict = "partly"
            text += " (log-linear misses it, outside its interval)"
    return verdict, text


def _ordering(points: Sequence[collect.Point], names: Mapping[Any, str]) -> tuple[str, str]:
    groups = collect.summaries(points)
    ft = {g.examples: g for g in groups if names.get(g.curve) == "fine-tuned"}
    fr = {g.examples: g for g in groups if names.get(g.curve) == "frozen before conv5"}
    sizes = sorted(set(ft) & set(fr))
    if not sizes:
        return "not measured", "needs both settings at one size"
    ordered = all(ft[s].mean > fr[s].mean for s in sizes)
    apart = all(ft[s].lo > fr[s].hi for s in sizes)
    gaps = ", ".join(f"{ft[s].mean - fr[s].mean:+.4f}" for s in sizes)
    verdict = "agrees" if ordered and apart else ("partly" if ordered else "disagrees")
    return verdict, f"fine-tuned minus frozen, by size: {gaps}"


def table(curves: Mapping[str, Sequence[collect.Point]], names: Mapping[Any, str]) -> str:
    """Markdown: | the paper's finding | what the miniature shows | verdict |."""
    lines = ["| the paper | the miniature | verdict |", "|---|---|---|"]
    for key, setting, claim in TRENDS:
        if key not in curves:
            continue
        points = [p for p in curves[key] if setting is None or names.get(p.curve) == setting]
        verdict, text = _trend(points) if points else ("not measured", "no runs")
        lines.append(f"| {claim} | {text} | {verdict} |")
    for key, claim in ORDERINGS:
        if key in curves:
            verdict, text = _ordering(curves[key], names)
            lines.append(f"| {claim} | {text} | {verdict} |")
    lines.append("| Fig. 5: higher-capacity models gain more from the data | not measured by "
                 "this command (one depth) | not measured |")
    return "\n".join(lines) + "\n"
