"""Pluggable evaluators, built by name from `config.evals.<name>.type`.

An evaluator is constructed as `cls(config, context)` and has
`run(variables) -> Iterator[(metric, value)]`; the trainer writes each as
`<name>/<metric>`. `default_registry()` lists the standard ones; nothing
registers itself at import.
"""

from __future__ import annotations

from big_vision_like.registry import Registry


def default_registry() -> Registry:
    from evaluators.classification import ClassificationEvaluator
    from evaluators.coco_ap import CocoApEvaluator
    from evaluators.fewshot import FewShotEvaluator
    from evaluators.keypoint_ap import KeypointApEvaluator
    from evaluators.linear_probe import LinearProbeEvaluator
    from evaluators.loss import LossEvaluator
    from evaluators.map_at_k import MapAtKEvaluator
    from evaluators.miou import MeanIoUEvaluator
    from evaluators.voc_ap import VocApEvaluator

    reg: Registry = Registry("evaluator")
    reg.register("loss", LossEvaluator)
    reg.register("map_at_k", MapAtKEvaluator)
    reg.register("classification", ClassificationEvaluator)
    reg.register("fewshot", FewShotEvaluator)
    reg.register("linear_probe", LinearProbeEvaluator)
    reg.register("keypoint_ap", KeypointApEvaluator)
    reg.register("miou", MeanIoUEvaluator)
    reg.register("coco_ap", CocoApEvaluator)
    reg.register("voc_ap", VocApEvaluator)
    return reg
