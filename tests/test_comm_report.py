"""The communication report reads collectives from compiled HLO correctly."""

import pytest

from benchmarks.comm_report import measure
from big_vision_like.comm_report import collectives, in_loops

HLO = """
  %all-reduce.1 = f32[1000]{0} all-reduce(f32[1000]{0} %x), channel_id=1, replica_groups={{0,1,2,3},{4,5,6,7}}, to_apply=%add
  %ag = bf16[8,128]{1,0} all-gather(bf16[1,128]{1,0} %y), channel_id=2, replica_groups=[1,8]<=[8], dimensions={0}
  %rs = f32[16]{0} reduce-scatter(f32[128]{0} %z), channel_id=3, replica_groups=[4,2]<=[8], dimensions={0}
  %ar2 = (f32[10]{0}, s32[]) all-reduce(f32[10]{0} %a, s32[] %b), replica_groups={}, to_apply=%add
  %ar3 = (f32[50]{0}, /*index=1*/f32[50]{0}) all-reduce(%c, %d), replica_groups=mesh['axis_0'=2,'axis_1'=4] {'axis_1'}, to_apply=%add
"""


def test_parses_kinds_group_sizes_and_bytes():
    c = collectives(HLO, num_devices=8)
    assert c["all-reduce"]["count"] == 3
    assert c["all-reduce"]["bytes_sent"] == pytest.approx(
        2 * 3 / 4 * 4000 + 2 * 7 / 8 * 44 + 2 * 3 / 4 * 400)
    assert c["all-gather"]["bytes_sent"] == pytest.approx(7 / 8 * 8 * 128 * 2)
    assert c["reduce-scatter"]["bytes_sent"] == pytest.approx(1 * 64)


LOOP_HLO = """
%add (a: f32[], b: f32[]) -> f32[] {
  ROOT %s = f32[] add(f32[] %a, f32[] %b)
}

%any (p: pred[]) -> pred[] {
  %p = pred[] parameter(0)
  ROOT %ar = pred[] all-reduce(pred[] %p), channel_id=2, replica_groups=[1,8]<=[8], to_apply=%or
}

%cond (t: (s32[], pred[])) -> pred[] {
  %t = (s32[], pred[]) parameter(0)
  ROOT %c = pred[] call(%t), to_apply=%any
}

%body (t: (s32[], pred[])) -> (s32[], pred[]) {
  ROOT %t = (s32[], pred[]) parameter(0)
}

ENTRY %main (x: f32[64]) -> f32[64] {
  %x = f32[64]{0} parameter(0)
  %w = (s32[], pred[]) while(%init), condition=%cond, body=%body
  ROOT %g = f32[64]{0} all-reduce(f32[64]{0} %x), channel_id=1, replica_groups=[1,8]<=[8], to_apply=%add
}
"""


def test_in_loops_counts_what_while_loops_reach_only():
    assert collectives(LOOP_HLO, 8)["all-reduce"]["count"] == 2
    assert in_loops(LOOP_HLO, 8) == {"all-reduce": 1}  # via the condition's call
    assert in_loops(LOOP_HLO.replace("condition=%cond", "condition=%body"), 8) == {}


@pytest.mark.slow
def test_replicated_step_all_reduces_the_gradients_and_fsdp_scatters_them():
    rep = measure(8, "replicated", depth=18, image_size=32, per_device_batch=2,
                  num_classes=64)
    params = rep["params"]
    grads = 2 * 7 / 8 * 4 * params  # ring all-reduce of float32 gradients
    sent = rep["collectives"]["all-reduce"]["bytes_sent"]
    assert grads <= sent < 1.1 * grads
    fsdp = measure(8, "fsdp", depth=18, image_size=32, per_device_batch=2, num_classes=64)
    kinds = fsdp["collectives"]
    assert "all-gather" in kinds and ("reduce-scatter" in kinds or "all-reduce" in kinds)
