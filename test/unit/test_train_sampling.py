import numpy as np

from ad_perception.models.train_camera import repeat_factors


def test_repeat_factors_favour_frames_with_rare_classes():
    labels = [np.array([0, 0])] * 8 + [np.array([0, 3])] * 2  # class 3 in 20% of frames
    weights = repeat_factors(labels, num_classes=4, threshold=0.8)
    assert np.allclose(weights[:8], 1.0)  # car is in every frame: no repeat
    assert np.allclose(weights[8:], np.sqrt(0.8 / 0.2))
    assert repeat_factors(labels, 4, threshold=0.0) is None
