"""Looking into a finished run: its curves, its checkpoint's predictions, the long tail.

    run = analysis.open_workdir("workdirs/demo")
    analysis.plot_curves(run)
    model = analysis.load_model(run)            # latest checkpoint
    got = analysis.collect(model, "test")       # logits, pre-logits, labels
    ap = analysis.per_class_ap(got["logits"], got["labels"])
    counts = analysis.train_frequency(run)

What notebooks/analyze_checkpoint.ipynb calls. The model, data and AP come from
the trainer's own code (build_task, its data class, init_from, map_at_k), so the
notebook sees what training and evaluation saw. Plots are matplotlib Figures
made without pyplot: nothing here changes the backend or shows a window.
"""

from big_vision_like.analysis.run import (
    Model,
    Run,
    checkpoint_steps,
    collect,
    curve_keys,
    eval_pp,
    load_model,
    metric_series,
    open_workdir,
    plot_curves,
    predict,
    show_predictions,
    top_classes,
)
from big_vision_like.analysis.tail import (
    families,
    per_class_ap,
    plot_ap_vs_frequency,
    plot_projection,
    project_2d,
    tail_counts,
    train_frequency,
)

__all__ = [
    "Model",
    "Run",
    "checkpoint_steps",
    "collect",
    "curve_keys",
    "eval_pp",
    "families",
    "load_model",
    "metric_series",
    "open_workdir",
    "per_class_ap",
    "plot_ap_vs_frequency",
    "plot_curves",
    "plot_projection",
    "predict",
    "project_2d",
    "show_predictions",
    "tail_counts",
    "top_classes",
    "train_frequency",
]
