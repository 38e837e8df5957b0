"""QAT step: NNCF fake-quantisers in the torch core (output convs left float), trained
through them with distillation, converted to an OpenVINO int8 IR that agrees with the float
model; the float weights underneath stay loadable as a plain checkpoint."""

from __future__ import annotations

import copy

import pytest
import torch

from ad_perception.compress.agreement import agreement
from ad_perception.compress.distill import Distiller
from ad_perception.compress.export import example_input
from ad_perception.compress.frames import CameraFrames, run_core, torch_core_fn
from ad_perception.compress.ptq import _fake_quantize_names
from ad_perception.compress.qat import (
    float_state,
    insert_fake_quantizers,
    output_conv_nodes,
    to_openvino_int8,
)
from ad_perception.compress.recipe import PtqParams
from ad_perception.compress.tiny import TINY_CAMERA, synthetic_camera_samples, tiny_model
from ad_perception.models.camera_detector import build_camera_detector
from ad_perception.runtime.openvino_backend import OpenVinoCore

pytestmark = pytest.mark.usefixtures("torch_single_thread")


class _Task:
    def forward_with(self, model, inputs):
        return model(inputs)


def test_qat_trains_through_fake_quantisers_and_exports_int8():
    teacher = tiny_model("camera")
    frames = CameraFrames(synthetic_camera_samples(4), TINY_CAMERA)
    assert len(output_conv_nodes(teacher, example_input("camera", TINY_CAMERA))) == 9
    student = insert_fake_quantizers(copy.deepcopy(teacher), "camera", TINY_CAMERA, frames,
                                     PtqParams(calibration_frames=4), keep_output_float=True)
    quantizer_parameters = [p for n, p in student.named_parameters() if "__nncf_hooks" in n]
    assert quantizer_parameters, "NNCF put no trainable quantisers into the model"
    hook = Distiller(teacher, student, "camera", _Task())
    optimiser = torch.optim.Adam(student.parameters(), lr=1e-4)
    inputs = torch.from_numpy(frames.core_input(0))
    student.train()
    for _ in range(3):
        losses = hook(student(inputs), {}, inputs)
        optimiser.zero_grad()
        sum(losses.values()).backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in quantizer_parameters)
        optimiser.step()
    hook.close()
    student.eval()

    int8 = to_openvino_int8(student, "camera", TINY_CAMERA)
    import openvino as ov

    # weights stored as int8 constants (as PTQ stores them), not fp32 behind FakeQuantize
    constants = [op for op in int8.get_ops() if op.get_type_name() == "Constant"]
    assert any(op.get_element_type() == ov.Type.i8 for op in constants)
    names = _fake_quantize_names(int8)
    assert names and not [n for n in names if "cls_logits" in n and "weight" in n]
    reference = [frames.decode(o) for o in run_core(frames, torch_core_fn(teacher))]
    quantized = [frames.decode(o) for o in run_core(frames, OpenVinoCore(int8, "f32", 1))]
    score = agreement(reference, quantized)
    assert score.reference > 0 and score.f1 > 0.5, score

    plain = build_camera_detector(TINY_CAMERA)
    plain.load_state_dict(float_state(student), strict=True)
