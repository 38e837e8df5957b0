"""Stem replacement (compress/restem.py) on a tiny camera detector: the old stem is kept as
the fitting target, the new one has the same output shape, fitting learns it, a finished fit
is reloaded rather than repeated, and a patch-stem model survives a checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from ad_perception.compress.restem import fit_stem, replace_stem, restem_camera, stem_of
from ad_perception.models.camera_detector import CameraDetector, CameraDetectorConfig
from ad_perception.models.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("torch_single_thread")
CONFIG = CameraDetectorConfig(input_size=(128, 64), width_multiplier=0.25, fpn_channels=16)


def _images(epoch: int, count: int = 4):
    generator = torch.Generator().manual_seed(epoch)
    for _ in range(count):
        yield torch.randn(2, 3, 64, 128, generator=generator)


def _model(seed: int = 0) -> CameraDetector:
    torch.manual_seed(seed)
    return CameraDetector(CONFIG).eval()


def test_replace_keeps_the_old_stem_as_a_frozen_target_with_the_same_output_shape():
    model = _model()
    example = next(_images(0))
    with torch.no_grad():
        before = stem_of(model.trunk)(example)
        old = replace_stem(model.trunk, "patch4")
        after = stem_of(model.trunk)(example)
        assert torch.equal(old(example), before)
    assert model.trunk.stem_kind == "patch4" and tuple(model.trunk.conv1.kernel_size) == (4, 4)
    assert after.shape == before.shape and not torch.allclose(after, before)
    assert not any(p.requires_grad for p in old.parameters())
    with pytest.raises(ValueError, match="already has a patch4 stem"):
        replace_stem(model.trunk, "patch4")
    with pytest.raises(ValueError, match="unknown stem 'conv3'"):
        replace_stem(model.trunk, "conv3")


def test_fitting_learns_the_old_stem():
    model = _model()
    old = replace_stem(model.trunk, "patch4")
    torch.manual_seed(0)
    history = fit_stem(stem_of(model.trunk), old, _images, epochs=10, steps_per_epoch=4,
                       lr=3e-2)
    assert [h["epoch"] for h in history] == list(range(1, 11))
    # white-noise images: the 4x4 patches cannot predict the old 11-pixel receptive field
    # fully (the error levels off near 0.9), but the first epoch starts around 5
    assert history[-1]["relative_error"] < 0.5 * history[0]["relative_error"], history


def test_a_deeper_fit_trains_the_stages_up_to_its_depth_and_leaves_the_rest():
    model = _model()
    later = {k: v.clone() for k, v in model.trunk.layer2.state_dict().items()}
    layer1 = {k: v.clone() for k, v in model.trunk.layer1.state_dict().items()}
    old = replace_stem(model.trunk, "patch4", fit_to="layer1")
    example = next(_images(0))
    assert old(example).shape == stem_of(model.trunk, "layer1")(example).shape
    assert len(old) == 5  # conv, bn, relu, pool, layer1
    fit_stem(stem_of(model.trunk, "layer1"), old, _images, epochs=1, steps_per_epoch=2, lr=1e-2)
    assert any(not torch.equal(v, model.trunk.layer1.state_dict()[k]) for k, v in layer1.items())
    for k, v in later.items():
        assert torch.equal(v, model.trunk.layer2.state_dict()[k]), k
    with pytest.raises(ValueError, match="fit_to must be one of stem, layer1"):
        stem_of(model.trunk, "fpn")


def test_a_finished_fit_is_reloaded_not_repeated(tmp_path):
    first = _model()
    effects = restem_camera(first, "patch4", _images, 1, 4, 1e-2, tmp_path)
    assert effects["stem"] == {"from": "conv7_maxpool", "to": "patch4"}
    assert not effects["reused_fit"]

    def no_batches(epoch: int):
        raise AssertionError("a finished fit must not be repeated")

    second = _model()
    again = restem_camera(second, "patch4", no_batches, 1, 4, 1e-2, tmp_path)
    assert again["reused_fit"] and again["fit"] == effects["fit"]
    for a, b in zip(stem_of(first.trunk).state_dict().values(),
                    stem_of(second.trunk).state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_patch_stem_model_round_trips_through_a_checkpoint(tmp_path):
    import dataclasses

    config = dataclasses.replace(CONFIG, stem="patch4")
    torch.manual_seed(1)
    model = CameraDetector(config).eval()
    path = tmp_path / "patch.pt"
    save_checkpoint(model, path, config, {"command": "test", "seed": 1, "data": []})
    loaded, card = load_checkpoint(path)
    loaded.eval()
    assert card.config["stem"] == "patch4"
    example = next(_images(3))
    with torch.no_grad():
        for a, b in zip(model(example), loaded(example), strict=True):
            assert torch.equal(a, b)
    with pytest.raises(ValueError,
                       match="stem must be one of conv7_maxpool, conv5_maxpool, patch4"):
        CameraDetectorConfig(stem="conv3")
