import numpy as np

from ad_perception.models.train_camera import repeat_factors


def test_repeat_factors_favour_frames_with_rare_classes():
    labels = [np.array([0, 0])] * 8 + [np.array([0, 3])] * 2  # class 3 in 20% of frames
    weights = repeat_factors(labels, num_classes=4, threshold=0.8)
    assert np.allclose(weights[:8], 1.0)  # car is in every frame: no repeat
    assert np.allclose(weights[8:], np.sqrt(0.8 / 0.2))
    assert repeat_factors(labels, 4, threshold=0.0) is None


def test_training_batches_are_contiguous_and_normalised_like_inference():
    """Training input must not be the channels-last view of the HWC images: oneDNN's
    channels-last backward-weights kernel corrupted the heap for an 8-channel stem."""
    import torch

    from ad_perception.models.letterbox import letterbox
    from ad_perception.models.train_camera import normalise

    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    batch = normalise(torch.from_numpy(images))
    assert batch.shape == (2, 3, 64, 96) and batch.is_contiguous()
    reference, _ = letterbox(images[1], (96, 64))  # same size: no resize, no padding
    torch.testing.assert_close(batch[1:], torch.as_tensor(reference).reshape(1, 3, 64, 96))
