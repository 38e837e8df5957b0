"""Knowledge distillation: the uncompressed model teaches the compressed one in every
fine-tune (after pruning, low-rank factorisation, and in QAT), through ``train_loop``'s
distillation hook, next to the ordinary detection loss.

- Response loss: the student's dense outputs follow the teacher's. Class (heatmap) logits:
  binary cross-entropy against the teacher's temperature-softened probabilities; box
  regression and centerness (lidar: the regression map): L1 / BCE weighted by the teacher's
  foreground confidence, so the background's meaningless boxes do not dominate.
- Feature loss: attention transfer (Zagoruyko & Komodakis) on the pyramid features (camera
  FPN levels, lidar shared BEV features): the L2-normalised spatial map of mean squared
  activations. It needs no channel adapter, so it works for a student with pruned channels
  and adds no parameters that would end up in the student's checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional


def feature_module(model: nn.Module, kind: str) -> nn.Module:
    """Where features are compared: camera FPN output, lidar shared BEV block."""
    return model.fpn if kind == "camera" else model.bev_backbone_and_heads.shared


def attention_map(feature: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W) unit-norm map of channel-mean squared activations."""
    return functional.normalize(feature.float().pow(2).mean(dim=1).flatten(1), dim=1)


def attention_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]
                   ) -> torch.Tensor:
    losses = [(attention_map(s) - attention_map(t)).norm(dim=1).mean()
              for s, t in zip(student, teacher, strict=True)]
    return torch.stack(losses).mean()


def _foreground_weight(teacher_logits: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) logits -> (B, 1, H, W) weights that sum to one per batch."""
    weight = torch.sigmoid(teacher_logits.float()).amax(dim=1, keepdim=True)
    return weight / weight.sum().clamp_min(1e-6)


def _soft_bce(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    target = torch.sigmoid(teacher.float() / temperature)
    return functional.binary_cross_entropy_with_logits(student.float() / temperature, target,
                                                       reduction="none")


def camera_response_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
                         temperature: float = 1.0) -> torch.Tensor:
    """Per level (cls, box, centerness) as the core emits them."""
    losses = []
    for level in range(0, len(student), 3):
        s_cls, s_box, s_ctr = student[level:level + 3]
        t_cls, t_box, t_ctr = teacher[level:level + 3]
        weight = _foreground_weight(t_cls)
        cls = _soft_bce(s_cls, t_cls, temperature).mean()
        box = ((s_box.float() - t_box.float()).abs().mean(dim=1, keepdim=True) * weight).sum()
        ctr = (_soft_bce(s_ctr, t_ctr, 1.0) * weight).sum()
        losses.append(cls * temperature ** 2 + box + ctr)
    return torch.stack(losses).mean()


def lidar_response_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
                        temperature: float = 1.0) -> torch.Tensor:
    (s_heat, s_reg), (t_heat, t_reg) = student, teacher
    weight = _foreground_weight(t_heat)
    heat = _soft_bce(s_heat, t_heat, temperature).mean() * temperature ** 2
    regression = ((s_reg.float() - t_reg.float()).abs().mean(dim=1, keepdim=True) * weight).sum()
    return heat + regression


class Distiller:
    """The ``train_loop`` distillation hook; call ``close()`` to remove its feature hooks."""

    def __init__(self, teacher: nn.Module, student: nn.Module, kind: str, task: Any,
                 response_weight: float = 1.0, feature_weight: float = 1.0,
                 temperature: float = 1.0) -> None:
        self.teacher, self.kind, self.task = teacher.eval(), kind, task
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.response_weight, self.feature_weight = response_weight, feature_weight
        self.temperature = temperature
        self._features: dict[str, Any] = {}
        self._handles = []
        if feature_weight:
            self._handles = [
                feature_module(student, kind).register_forward_hook(self._keep("student")),
                feature_module(teacher, kind).register_forward_hook(self._keep("teacher")),
            ]

    def _keep(self, name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self._features[name] = list(output) if isinstance(output, list | tuple) else [output]

        return hook

    def __call__(self, student_outputs: Any, batch: dict, inputs: Any) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            teacher_outputs = self.task.forward_with(self.teacher, inputs)
        losses: dict[str, torch.Tensor] = {}
        if self.response_weight:
            response = (camera_response_loss if self.kind == "camera" else lidar_response_loss)
            losses["distill_response"] = self.response_weight * response(
                student_outputs, teacher_outputs, self.temperature)
        if self.feature_weight:
            losses["distill_feature"] = self.feature_weight * attention_loss(
                self._features["student"], self._features["teacher"])
        return losses

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
