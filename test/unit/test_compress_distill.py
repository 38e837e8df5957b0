"""Distillation hook: response and feature losses pull a (pruned) student towards the
teacher through the training loop's hook, and never touch the teacher."""

from __future__ import annotations

import copy

import pytest
import torch

from ad_perception.compress.distill import Distiller, attention_loss
from ad_perception.compress.export import example_input
from ad_perception.compress.prune import prune
from ad_perception.compress.recipe import PruneParams
from ad_perception.compress.tiny import tiny_config, tiny_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")


class _CoreTask:
    """The piece of a task adapter the hook uses: how to run a model on the batch inputs."""

    def __init__(self, kind):
        self.kind = kind

    def forward_with(self, model, inputs):
        return model(inputs) if self.kind == "camera" else model.bev_backbone_and_heads(inputs)


def test_attention_loss_is_zero_for_equal_features_and_channel_agnostic():
    torch.manual_seed(0)
    features = [torch.randn(2, 16, 8, 10)]
    assert float(attention_loss(features, features)) == pytest.approx(0.0, abs=1e-6)
    narrow = [torch.randn(2, 8, 8, 10)]  # a pruned student has fewer channels
    assert float(attention_loss(narrow, features)) > 0.0


@pytest.mark.parametrize("kind", ["camera", "lidar"])
def test_distillation_pulls_a_pruned_student_towards_the_teacher(kind):
    teacher = tiny_model(kind)
    student = copy.deepcopy(teacher)
    prune(student, kind, tiny_config(kind), PruneParams(ratio=0.5))
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    task = _CoreTask(kind)
    hook = Distiller(teacher, student, kind, task, response_weight=1.0, feature_weight=1.0)
    inputs = example_input(kind, tiny_config(kind), batch=2).normal_(
        generator=torch.Generator().manual_seed(5))
    if kind == "lidar":
        inputs = inputs.relu()
    optimiser = torch.optim.Adam(student.parameters(), lr=3e-3)
    student.train()
    history = []
    for _ in range(25):
        losses = hook(task.forward_with(student, inputs), {}, inputs)
        assert set(losses) == {"distill_response", "distill_feature"}
        total = sum(losses.values())
        optimiser.zero_grad()
        total.backward()
        optimiser.step()
        history.append(float(total.detach()))
    hook.close()
    assert history[-1] < 0.8 * history[0], history
    for name, value in teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_state[name])
    assert not any(p.requires_grad for p in teacher.parameters())
