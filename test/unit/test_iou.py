"""Box overlap geometry: COCO image-box IoU, rotated BEV IoU, 3D IoU, aligned (scale) IoU."""

import math

import numpy as np
import pytest

from ad_perception.core.types import Boxes3D
from ad_perception.eval.iou import (
    aligned_iou_3d,
    bev_and_3d_iou,
    bev_corners,
    bev_iou,
    box_iou_2d,
    convex_intersection_area,
    iou_3d,
)


def boxes(rows) -> Boxes3D:
    """Boxes from rows of x, y, z, length, width, height, yaw."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    return Boxes3D(rows[:, :3], rows[:, 3:6], rows[:, 6])


def rasterised_bev_iou(a: np.ndarray, b: np.ndarray, cells: int = 600) -> float:
    """Reference IoU by counting grid cell centres inside each rotated rectangle."""
    corners = bev_corners(np.array([a[:2], b[:2]]), np.array([a[3], b[3]]),
                          np.array([a[4], b[4]]), np.array([a[6], b[6]]))
    low, high = corners.reshape(-1, 2).min(0), corners.reshape(-1, 2).max(0)
    xs = np.linspace(low[0], high[0], cells)
    ys = np.linspace(low[1], high[1], cells)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)

    def inside(box):
        offset = grid - box[:2]
        cos, sin = math.cos(box[6]), math.sin(box[6])
        along = offset[:, 0] * cos + offset[:, 1] * sin
        across = -offset[:, 0] * sin + offset[:, 1] * cos
        return (np.abs(along) <= box[3] / 2) & (np.abs(across) <= box[4] / 2)

    in_a, in_b = inside(a), inside(b)
    return np.count_nonzero(in_a & in_b) / max(np.count_nonzero(in_a | in_b), 1)


# ------------------------------------------------------------------------------ image boxes


def test_box_iou_2d_hand_values_and_crowd():
    det = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=float)
    gt = np.array([[0, 0, 10, 10], [0, 0, 20, 20]], dtype=float)
    iou = box_iou_2d(det, gt)
    np.testing.assert_allclose(iou, [[1.0, 0.25], [50 / 150, 0.25], [0.0, 0.0]])
    crowd = box_iou_2d(det, gt, gt_is_crowd=np.array([False, True]))
    np.testing.assert_allclose(crowd[:, 1], [1.0, 1.0, 0.0])  # intersection / detection area
    # Touching edges do not overlap: no "+1" pixel convention.
    assert box_iou_2d(np.array([[0, 0, 10, 10]]), np.array([[10, 0, 20, 10]]))[0, 0] == 0.0
    assert box_iou_2d(np.zeros((0, 4)), gt).shape == (0, 2)


def test_box_iou_2d_matches_coco_mask_iou():
    from faster_coco_eval.core import mask

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (30, 2))
    det = np.hstack([xy, xy + rng.uniform(1, 60, (30, 2))])
    xy = rng.uniform(0, 100, (20, 2))
    gt = np.hstack([xy, xy + rng.uniform(1, 60, (20, 2))])
    crowd = rng.random(20) < 0.3

    def xywh(b):
        return np.hstack([b[:, :2], b[:, 2:] - b[:, :2]])

    reference = np.asarray(mask.iou(xywh(det), xywh(gt), crowd.astype(int).tolist()))
    np.testing.assert_array_equal(box_iou_2d(det, gt, crowd), reference)


# ----------------------------------------------------------------------------- rotated BEV


def test_bev_corners_agree_with_boxes3d_corners():
    box = boxes([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.7]])
    expected = box.corners()[:, :4, :2]
    np.testing.assert_allclose(bev_corners(box.centers[:, :2], box.sizes[:, 0],
                                           box.sizes[:, 1], box.yaws), expected)


def test_bev_iou_axis_aligned_exact():
    a = boxes([[0, 0, 0, 4, 2, 1, 0]])
    shifted = boxes([[1, 0, 0, 4, 2, 1, 0], [0, 1, 0, 4, 2, 1, 0], [1, 1, 0, 4, 2, 1, 0]])
    np.testing.assert_allclose(bev_iou(shifted, a)[:, 0], [6 / 10, 4 / 12, 3 / 13], atol=1e-12)
    # Flipping the heading by pi changes nothing.
    flipped = boxes([[0, 0, 0, 4, 2, 1, math.pi]])
    assert bev_iou(flipped, a)[0, 0] == pytest.approx(1.0, abs=1e-12)


def test_bev_iou_quarter_turns_exact():
    a = boxes([[0, 0, 0, 4, 2, 1, 0]])
    turned = boxes([[0, 0, 0, 4, 2, 1, math.pi / 2], [0, 0, 0, 2, 4, 1, math.pi / 2],
                    [0, 0, 0, 4, 2, 1, -3 * math.pi / 2]])
    np.testing.assert_allclose(bev_iou(turned, a)[:, 0], [4 / 12, 1.0, 4 / 12], atol=1e-12)
    # A square rotated by 45 degrees inside its own circumscribed square: area 2 over 4.
    square = boxes([[0, 0, 0, 2, 2, 1, 0]])
    diamond = boxes([[0, 0, 0, math.sqrt(2), math.sqrt(2), 1, math.pi / 4]])
    assert bev_iou(diamond, square)[0, 0] == pytest.approx(2 / 4, abs=1e-12)


def test_bev_iou_identical_disjoint_and_empty():
    a = boxes([[3, -2, 0, 4.5, 1.9, 1.6, 0.4], [30, 0, 0, 1, 1, 1, 0]])
    iou = bev_iou(a, a)
    np.testing.assert_allclose(np.diag(iou), [1.0, 1.0], atol=1e-12)
    assert iou[0, 1] == 0.0 and iou[1, 0] == 0.0
    # Circumcircles overlap but the rectangles do not.
    diagonal = boxes([[0, 0, 0, 2, 2, 1, 0], [2.2, 2.2, 0, 2, 2, 1, math.pi / 4]])
    assert bev_iou(diagonal, diagonal)[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert bev_iou(Boxes3D.empty(), a).shape == (0, 2)


@pytest.mark.parametrize("seed", range(3))
def test_bev_iou_matches_rasterised_reference(seed):
    rng = np.random.default_rng(seed)
    n = 12
    rows_a = np.column_stack([rng.uniform(-2, 2, (n, 2)), np.zeros(n),
                              rng.uniform(0.5, 5, (n, 2)), np.ones(n), rng.uniform(-4, 4, n)])
    rows_b = rows_a + np.column_stack([rng.normal(0, 1, (n, 2)), np.zeros(n),
                                       rng.normal(0, 0.5, (n, 2)).clip(-0.4), np.zeros(n),
                                       rng.uniform(-2, 2, n)])
    exact = bev_iou(boxes(rows_a), boxes(rows_b))
    for i in range(n):
        reference = rasterised_bev_iou(rows_a[i], rows_b[i])
        assert exact[i, i] == pytest.approx(reference, abs=2e-3)
    assert np.any((exact.diagonal() > 0.05) & (exact.diagonal() < 0.95))


def test_bev_iou_symmetric_and_rigid_motion_invariant():
    rng = np.random.default_rng(5)
    rows = np.column_stack([rng.uniform(-3, 3, (15, 2)), np.zeros(15),
                            rng.uniform(0.5, 4, (15, 2)), np.ones(15), rng.uniform(-3, 3, 15)])
    iou = bev_iou(boxes(rows), boxes(rows))
    np.testing.assert_allclose(iou, iou.T, atol=1e-12)
    angle, shift = 0.8, np.array([7.0, -3.0])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    moved = rows.copy()
    moved[:, :2] = rows[:, :2] @ rotation.T + shift
    moved[:, 6] += angle
    np.testing.assert_allclose(bev_iou(boxes(moved), boxes(moved)), iou, atol=1e-9)


def test_convex_intersection_of_nested_quads():
    outer = bev_corners(np.zeros((1, 2)), np.array([4.0]), np.array([4.0]), np.array([0.3]))
    inner = bev_corners(np.zeros((1, 2)), np.array([1.0]), np.array([1.0]), np.array([1.1]))
    assert convex_intersection_area(inner, outer)[0] == pytest.approx(1.0)
    assert convex_intersection_area(outer, inner)[0] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------- 3D


def test_iou_3d_identical_disjoint_and_known_value():
    a = boxes([[0, 0, 1, 4, 2, 2, 0.2]])
    assert iou_3d(a, a)[0, 0] == pytest.approx(1.0, abs=1e-12)
    above = boxes([[0, 0, 3.5, 4, 2, 2, 0.2]])  # same footprint, no vertical overlap
    assert iou_3d(above, a)[0, 0] == 0.0 and bev_iou(above, a)[0, 0] == pytest.approx(1.0)
    far = boxes([[50, 0, 1, 4, 2, 2, 0.2]])
    assert iou_3d(far, a)[0, 0] == 0.0
    # Half the height overlapping and a quarter turn: BEV 4/12, volume 4 * 1 / (16 + 16 - 4).
    turned = boxes([[0, 0, 2, 4, 2, 2, 0.2 + math.pi / 2]])
    bev, volume = bev_and_3d_iou(turned, a)
    assert bev[0, 0] == pytest.approx(4 / 12) and volume[0, 0] == pytest.approx(4 / 28)


def test_aligned_iou_is_scale_only():
    assert aligned_iou_3d([4, 2, 1.5], [4, 2, 1.5]) == pytest.approx(1.0)
    assert aligned_iou_3d([4.4, 2, 2], [4, 2, 2]) == pytest.approx(4 / 4.4)
    np.testing.assert_allclose(aligned_iou_3d([[2, 2, 2], [1, 1, 1]], [[1, 1, 1], [1, 1, 1]]),
                               [1 / 8, 1.0])
