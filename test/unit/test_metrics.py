"""Evaluation metrics: COCO agreement with faster_coco_eval, invariants, hand-made cases."""

import json
import math
import time

import numpy as np
import pytest

from ad_perception import CLASSES
from ad_perception.core.types import Boxes3D, Detections2D
from ad_perception.eval.metrics import (
    COCO_IOU_THRESHOLDS,
    DIFFICULTIES,
    Frame3D,
    evaluate_2d,
    evaluate_3d,
    latency_summary,
)

# ------------------------------------------------------------------------------- helpers


def random_scene(rng: np.random.Generator, n_images: int, score_levels: int | None = None):
    """Frames with jittered true detections, misses, false positives and (optionally) tied
    scores; about one ground-truth box in seven is a crowd region."""
    frames = []
    for _ in range(n_images):
        n_gt = int(rng.integers(0, 12))
        xy = rng.uniform(0, 500, (n_gt, 2))
        wh = rng.uniform(5, 150, (n_gt, 2))
        gt_boxes = np.concatenate([xy, xy + wh], axis=1)
        gt_classes = rng.choice(CLASSES[:3], n_gt)  # "cyclist" never has ground truth
        crowd = rng.random(n_gt) < 0.15
        kept = rng.random(n_gt) > 0.2  # missed detections
        jitter = rng.normal(0, 0.12, (n_gt, 4)) * np.concatenate([wh, wh], axis=1)
        det_boxes = (gt_boxes + jitter)[kept]
        det_classes = gt_classes[kept].copy()
        swapped = rng.random(len(det_classes)) < 0.1
        det_classes[swapped] = rng.choice(CLASSES, int(swapped.sum()))
        n_fp = int(rng.integers(0, 6))
        fp_xy = rng.uniform(0, 500, (n_fp, 2))
        fp_boxes = np.concatenate([fp_xy, fp_xy + rng.uniform(5, 150, (n_fp, 2))], axis=1)
        det_boxes = np.concatenate([det_boxes, fp_boxes])
        det_classes = np.concatenate([det_classes, rng.choice(CLASSES, n_fp)])
        for box, name in zip(gt_boxes[crowd], gt_classes[crowd], strict=True):
            # Two detections inside a crowd region: it absorbs both, neither is a false positive.
            size = box[2:] - box[:2]
            corner = box[:2] + rng.uniform(0, 0.3, (2, 2)) * size
            det_boxes = np.concatenate([det_boxes, np.hstack([corner, corner + 0.6 * size])])
            det_classes = np.concatenate([det_classes, [name, name]])
        if rng.random() < 0.3:  # a duplicate of the first detection: an IoU tie
            det_boxes = np.concatenate([det_boxes, det_boxes[:1]])
            det_classes = np.concatenate([det_classes, det_classes[:1]])
        scores = rng.random(len(det_boxes))
        if score_levels:
            scores = np.round(scores * score_levels) / score_levels
        frames.append((
            Detections2D(gt_boxes, np.ones(n_gt), gt_classes),
            Detections2D(det_boxes, scores, det_classes),
            crowd,
        ))
    return frames


def coco_reference(frames, classes=CLASSES) -> np.ndarray:
    """faster_coco_eval's precision array (T, R, K) for area "all", maxDets 100."""
    from faster_coco_eval import COCO, COCOeval_faster

    def xywh(box):
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    images, annotations, results = [], [], []
    for image_id, (gt, pred, crowd) in enumerate(frames, start=1):
        images.append({"id": image_id, "width": 1000, "height": 1000})
        for box, name, is_crowd in zip(gt.boxes, gt.class_ids, crowd, strict=True):
            bbox = xywh(box)
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "bbox": bbox,
                "category_id": classes.index(name) + 1, "area": bbox[2] * bbox[3],
                "iscrowd": int(is_crowd),
            })
        for box, name, score in zip(pred.boxes, pred.class_ids, pred.scores, strict=True):
            results.append({"image_id": image_id, "category_id": classes.index(name) + 1,
                            "bbox": xywh(box), "score": float(score)})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
    coco_gt = COCO({"images": images, "annotations": annotations, "categories": categories})
    coco_dt = coco_gt.loadRes(results)
    evaluator = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *_: None)
    evaluator.evaluate()
    evaluator.accumulate()
    return np.asarray(evaluator.eval["precision"])[:, :, :, 0, -1]


def box3d(rows, classes, scores=None) -> Boxes3D:
    """Boxes from rows of x, y, z, length, width, height, yaw."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    return Boxes3D(rows[:, :3], rows[:, 3:6], rows[:, 6], scores=scores, class_ids=classes)


# -------------------------------------------------------------------------------- 2D COCO


@pytest.mark.parametrize("seed", range(6))
def test_2d_agrees_with_faster_coco_eval(seed):
    rng = np.random.default_rng(seed)
    n_images = int(rng.integers(3, 15))
    frames = random_scene(rng, n_images, score_levels=5 if seed % 2 else None)
    reference = coco_reference(frames)
    result = evaluate_2d(frames)
    for k, name in enumerate(CLASSES):
        ours = result.pr_curves[name].precision
        theirs = reference[:, :, k]
        if np.all(theirs == -1):
            assert np.all(np.isnan(ours)) and math.isnan(result.ap[name])
            continue
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
        assert result.ap[name] == pytest.approx(theirs.mean(), abs=1e-6)
        assert result.ap50[name] == pytest.approx(theirs[0].mean(), abs=1e-6)
    valid = reference[reference > -1]
    assert result.map == pytest.approx(valid.mean(), abs=1e-6)
    assert result.map50 == pytest.approx(reference[0][reference[0] > -1].mean(), abs=1e-6)
    assert math.isnan(result.ap["cyclist"])


def test_2d_perfect_predictions_score_exactly_one():
    rng = np.random.default_rng(10)
    frames = [(gt, Detections2D(gt.boxes, rng.random(len(gt)), gt.class_ids))
              for gt, _, _ in random_scene(rng, 8)]
    result = evaluate_2d(frames, classes=CLASSES[:3])
    assert all(value == 1.0 for value in result.ap.values())
    assert result.map == 1.0 and result.map50 == 1.0


def test_2d_empty_predictions_score_zero():
    frames = [(gt, Detections2D.empty()) for gt, _, _ in random_scene(np.random.default_rng(3), 5)]
    result = evaluate_2d(frames, classes=CLASSES[:3])
    assert all(value == 0.0 for value in result.ap.values())
    assert result.map == 0.0


def test_2d_prediction_order_does_not_matter():
    rng = np.random.default_rng(4)
    frames = [(gt, pred) for gt, pred, _ in random_scene(rng, 10)]
    shuffled = [(gt, pred.select(rng.permutation(len(pred)))) for gt, pred in frames]
    # Scores are distinct here; with tied scores COCO itself depends on input order.
    before, after = evaluate_2d(frames, CLASSES[:3]), evaluate_2d(shuffled, CLASSES[:3])
    assert after.ap == before.ap and after.ap50 == before.ap50
    assert 0.0 < before.map < before.map50 < 1.0


def test_2d_hand_computed_case():
    # One image, two cars. Ranked detections: hit (IoU 1), false positive, hit with IoU 0.62.
    gt = Detections2D([[0, 0, 10, 10], [20, 0, 30, 10]], [1, 1], ["car", "car"])
    pred = Detections2D(
        [[0, 0, 10, 10], [100, 100, 110, 110], [20, 0, 30, 6.2]], [0.9, 0.8, 0.7], ["car"] * 3
    )
    result = evaluate_2d([(gt, pred)], classes=["car"])
    # IoU 0.5 and 0.55: recall 0.5 at precision 1, recall 1 at 2/3 -> 51 * 1 + 50 * 2/3 points.
    at_05 = (51 + 50 * 2 / 3) / 101
    assert result.ap50["car"] == pytest.approx(at_05, abs=1e-12)
    # 0.62 IoU counts at thresholds 0.5, 0.55, 0.6; above that only recall 0.5 at precision 1.
    expected = (3 * at_05 + 7 * 51 / 101) / 10
    assert result.ap["car"] == pytest.approx(expected, abs=1e-12)
    assert result.pr_curves["car"].at(0.5)[50] == 1.0
    assert result.pr_curves["car"].at(0.5)[51] == pytest.approx(2 / 3)
    assert len(COCO_IOU_THRESHOLDS) == 10


def test_2d_to_dict_is_json_with_none_for_nan():
    gt = Detections2D([[0, 0, 10, 10]], [1], ["car"])
    payload = evaluate_2d([(gt, gt)]).to_dict()
    text = json.dumps(payload, allow_nan=False)
    assert json.loads(text)["ap"] == {"car": 1.0, "truck": None, "pedestrian": None,
                                      "cyclist": None}


# --------------------------------------------------------------------------- 3D / BEV / dist


CAR = [10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.3]
PEDESTRIAN = [5.0, 3.0, 0.0, 0.6, 0.6, 1.8, 0.0]


def test_3d_perfect_and_empty():
    gt = box3d([CAR, PEDESTRIAN], ["car", "pedestrian"])
    perfect = evaluate_3d([Frame3D(gt, gt)], classes=["car", "pedestrian"])
    assert perfect.bev_ap == {"car": 1.0, "pedestrian": 1.0}
    assert perfect.ap_3d == {"car": 1.0, "pedestrian": 1.0}
    assert perfect.dist_ap == {"car": 1.0, "pedestrian": 1.0}
    assert perfect.map_bev == perfect.map_3d == perfect.map_dist == 1.0
    assert perfect.tp_errors["car"] == {"trans_err": 0.0, "scale_err": 0.0, "orient_err": 0.0,
                                        "count": 1}
    empty = evaluate_3d([Frame3D(gt, Boxes3D.empty())], classes=["car", "pedestrian"])
    assert empty.bev_ap == empty.ap_3d == empty.dist_ap == {"car": 0.0, "pedestrian": 0.0}
    assert math.isnan(empty.tp_errors["car"]["trans_err"])
    assert empty.tp_errors["car"]["count"] == 0


def test_3d_iou_threshold_per_class():
    # Shifted 0.6 m along the car's length: BEV IoU 3.4/4.6 = 0.739 >= 0.7 but 3D IoU is
    # lowered by a 0.3 m vertical shift to 8.16 / 15.84 = 0.52 < 0.7.
    gt = box3d([CAR], ["car"])
    shifted = list(CAR)
    shifted[0] += 0.6 * math.cos(CAR[6])
    shifted[1] += 0.6 * math.sin(CAR[6])
    shifted[2] += 0.3
    result = evaluate_3d([Frame3D(gt, box3d([shifted], ["car"]))], classes=["car"])
    assert result.bev_ap["car"] == 1.0
    assert result.ap_3d["car"] == 0.0
    assert result.dist_ap_by_threshold[0.5]["car"] == 0.0  # 0.6 m away
    assert result.dist_ap_by_threshold[1.0]["car"] == 1.0
    assert result.dist_ap["car"] == 0.75


def test_difficulty_filtering_ignores_the_right_boxes():
    cars = [[10.0 * (i + 1), 0, 0, 4, 2, 1.5, 0] for i in range(4)]
    gt = box3d(cars, ["car"] * 4)
    # Per box: easy; moderate (occluded 1); hard (occluded 2); too small for any difficulty.
    attributes = {"occlusion": [0, 1, 2, 0], "truncation": [0.0, 0.2, 0.4, 0.0],
                  "height_px": [60, 30, 30, 20]}
    predictions = box3d([cars[0]], ["car"])  # only the easy box is detected
    easy = evaluate_3d([Frame3D(gt, predictions, **attributes)], classes=["car"],
                       difficulty="easy")
    assert easy.bev_ap["car"] == 1.0
    # Recall 1/2 (moderate: boxes 0 and 1 count) and 1/3 (hard: 0, 1, 2) with precision 1.
    moderate = evaluate_3d([Frame3D(gt, predictions, **attributes)], classes=["car"],
                           difficulty="moderate")
    assert moderate.bev_ap["car"] == pytest.approx(20 / 40)
    hard = evaluate_3d([Frame3D(gt, predictions, **attributes)], classes=["car"],
                       difficulty="hard")
    assert hard.bev_ap["car"] == pytest.approx(13 / 40)
    # A detection on an ignored box (the tiny one) is dropped, not a false positive.
    on_ignored = box3d([cars[0], cars[3]], ["car", "car"], scores=[0.5, 0.9])
    result = evaluate_3d([Frame3D(gt, on_ignored, **attributes)], classes=["car"],
                         difficulty="easy")
    assert result.bev_ap["car"] == 1.0
    everything = evaluate_3d([Frame3D(gt, on_ignored, **attributes)], classes=["car"])
    assert everything.bev_ap["car"] == pytest.approx(20 / 40)


def test_each_difficulty_limit_ignores_on_its_own():
    gt = box3d([CAR] * 4, ["car"] * 4)
    truncated = Frame3D(gt, gt, occlusion=[0] * 4, truncation=[0.1, 0.25, 0.45, 0.6],
                        height_px=[50] * 4)
    short = Frame3D(gt, gt, height_px=[45, 39, 25, 24])  # no occlusion/truncation labels
    occluded = Frame3D(gt, gt, occlusion=[0, 1, 2, 3])  # 3 = unknown: never counted
    expected = {
        "easy": ([0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]),
        "moderate": ([0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 1, 1]),
        "hard": ([0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]),
    }
    for name, (by_truncation, by_height, by_occlusion) in expected.items():
        limits = DIFFICULTIES[name]
        assert truncated.gt_ignored(limits, 0).tolist() == [bool(v) for v in by_truncation]
        assert short.gt_ignored(limits, 0).tolist() == [bool(v) for v in by_height]
        assert occluded.gt_ignored(limits, 0).tolist() == [bool(v) for v in by_occlusion]
    assert not truncated.gt_ignored(None, 0).any()


def test_min_points_ignores_sparse_boxes():
    gt = box3d([CAR, [30, 0, 0, 4, 2, 1.5, 0]], ["car", "car"])
    frame = Frame3D(gt, box3d([CAR], ["car"]), num_points=[120, 2])
    assert evaluate_3d([frame], classes=["car"], min_points=5).bev_ap["car"] == 1.0
    assert evaluate_3d([frame], classes=["car"]).bev_ap["car"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="num_points"):
        evaluate_3d([Frame3D(gt, gt)], classes=["car"], min_points=5)


def test_distance_bins():
    # Ground truth at 10 m, 40 m and 70 m; only the 10 m and 70 m ones are detected, plus a
    # false positive at 45 m.
    centres = [(10, 0), (0, 40), (-42, -56.3)]
    gt = box3d([[x, y, 0, 4, 2, 1.5, 0] for x, y in centres], ["car"] * 3)
    predictions = box3d(
        [[10, 0, 0, 4, 2, 1.5, 0], [-42, -56.3, 0, 4, 2, 1.5, 0], [45, 0, 0, 4, 2, 1.5, 0]],
        ["car"] * 3, scores=[0.9, 0.8, 0.95],
    )
    result = evaluate_3d([Frame3D(gt, predictions)], classes=["car"])
    by_range = result.dist_ap_by_range
    assert by_range["0-30"]["car"] == 1.0
    assert by_range["30-50"]["car"] == 0.0  # its only box missed, and a false positive there
    assert by_range["50+"]["car"] == 1.0
    assert 0.0 < result.dist_ap["car"] < 1.0


def test_tp_errors_on_known_offsets():
    gt = box3d([[10, 0, 0, 4, 2, 2, 0.0]], ["car"])
    # 1.2 m off (0.72, 0.96), 10 % longer, heading reversed minus 0.1 rad.
    predictions = box3d([[10.72, 0.96, 0.5, 4.4, 2, 2, np.pi - 0.1]], ["car"])
    errors = evaluate_3d([Frame3D(gt, predictions)], classes=["car"]).tp_errors["car"]
    assert errors["trans_err"] == pytest.approx(1.2)
    assert errors["scale_err"] == pytest.approx(1 - 4.0 / 4.4)
    assert errors["orient_err"] == pytest.approx(np.pi - 0.1)
    assert errors["count"] == 1
    far = box3d([[12.5, 0, 0, 4, 2, 2, 0]], ["car"])  # 2.5 m away: not a TP at 2 m
    assert evaluate_3d([Frame3D(gt, far)], classes=["car"]).tp_errors["car"]["count"] == 0


def test_3d_to_dict_json():
    gt = box3d([CAR], ["car"])
    payload = evaluate_3d([Frame3D(gt, gt)], difficulty="moderate").to_dict()
    decoded = json.loads(json.dumps(payload, allow_nan=False))
    assert decoded["bev_ap"]["car"] == 1.0 and decoded["bev_ap"]["truck"] is None
    assert decoded["dist_ap_by_range"]["50+"]["car"] is None
    assert decoded["difficulty"] == "moderate"


def test_evaluation_of_1000_frames_takes_seconds():
    rng = np.random.default_rng(7)
    frames = []
    for _ in range(1000):
        n = 20
        rows = np.column_stack([
            rng.uniform(-60, 60, (n, 2)), rng.uniform(-1, 1, n), rng.uniform(0.5, 5, (n, 3)),
            rng.uniform(-np.pi, np.pi, n),
        ])
        classes = rng.choice(CLASSES, n)
        noisy = rows + rng.normal(0, 0.2, rows.shape)
        frames.append(Frame3D(box3d(rows, classes), box3d(noisy, classes, rng.random(n))))
    start = time.perf_counter()
    result = evaluate_3d(frames)
    elapsed = time.perf_counter() - start
    assert elapsed < 20.0, f"3D evaluation took {elapsed:.1f} s"
    assert 0.0 < result.map_bev < 1.0
    boxes = [
        (Detections2D(f.gt.centers[:, :2].repeat(2, 1) + [0, 0, 50, 40], np.ones(20),
                      f.gt.class_ids),
         Detections2D(f.predictions.centers[:, :2].repeat(2, 1) + [0, 0, 50, 40],
                      f.predictions.scores, f.predictions.class_ids))
        for f in frames
    ]
    start = time.perf_counter()
    evaluate_2d(boxes)
    assert time.perf_counter() - start < 20.0


# ---------------------------------------------------------------------------------- latency


def test_latency_summary():
    samples = np.arange(1, 101, dtype=float)
    summary = latency_summary(samples)
    assert summary["count"] == 100 and summary["max"] == 100.0 and summary["mean"] == 50.5
    assert summary["p50"] == pytest.approx(50.5) and summary["p99"] == pytest.approx(99.01)
    assert summary["jitter"] == pytest.approx(np.std(samples))
    assert latency_summary([])["count"] == 0 and math.isnan(latency_summary([])["p50"])
    with pytest.raises(ValueError):
        latency_summary([1.0, float("nan")])
