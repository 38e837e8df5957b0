"""The compression report: JSON in the issue's shape with speedups and drops against the
fp32 torch eager baseline measured in the same run, markdown and Pareto plot beside it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ad_perception.compress.report import ROW_KEYS, build_rows, fastest_fp32, pareto_front

ROOT = Path(__file__).resolve().parents[2]


def _entry(name, precision, p50, ap, compressed=False, backend="torch"):
    return {"name": name, "backend": backend, "precision": precision, "params": 1, "macs": 1,
            "size_bytes": 1, "latency_ms_p50": p50, "latency_ms_p99": p50 * 1.5,
            "ap50_mean": ap, "compressed": compressed}


def test_rows_compare_with_the_baseline_and_the_fastest_fp32():
    rows = build_rows([_entry("baseline", "fp32", 100.0, 60.0),
                       _entry("baseline_openvino", "fp32", 50.0, 60.0, backend="openvino"),
                       _entry("pruned", "fp32", 20.0, 59.5, compressed=True),
                       _entry("int8", "int8", 5.0, 59.2, compressed=True, backend="openvino")])
    by_name = {r["name"]: r for r in rows}
    assert by_name["baseline"]["speedup_vs_baseline"] == 1.0
    assert by_name["int8"]["speedup_vs_baseline"] == pytest.approx(20.0)
    assert by_name["int8"]["speedup_vs_fastest_fp32"] == pytest.approx(10.0)  # not "pruned"
    assert by_name["int8"]["ap50_drop"] == pytest.approx(0.8)
    assert fastest_fp32(rows) == "baseline_openvino"
    assert set(pareto_front(rows)) == {"baseline_openvino", "pruned", "int8"}
    assert all(set(ROW_KEYS) <= set(r) for r in rows)


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_compression",
                                                  ROOT / "scripts" / "bench_compression.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # ~15 s: a variant, a bag and a full benchmark run
@pytest.mark.usefixtures("torch_single_thread")
def test_script_measures_every_variant_in_one_run(tmp_path):
    from ad_perception.compress.recipe import load_recipe, shipped_recipe_dir
    from ad_perception.compress.runner import RecipeRunner, RunOptions
    from ad_perception.compress.tiny import save_tiny_checkpoint
    from ad_perception.sim.bag_output import generate_bag

    bag = generate_bag(tmp_path / "bag", 3, 41, "mcap", "default", progress=False, workers=1)
    baseline = save_tiny_checkpoint("camera", tmp_path / "camera.pt")
    variant = tmp_path / "bf16_cpu"
    RecipeRunner(load_recipe(shipped_recipe_dir() / "bf16_cpu.yaml"),
                 RunOptions("camera", baseline, [bag], variant, progress=False),
                 log=lambda *_: None).run()
    out = tmp_path / "report" / "camera.json"
    assert _load_script().main(["--model", "camera", "--json", str(out), "--baseline",
                                str(baseline), "--variants", str(variant), "--heldout",
                                str(bag), "--threads", "1", "--rounds", "2", "--per-turn", "1",
                                "--warmup", "1"]) == 0
    report = json.loads(out.read_text())
    assert report["baseline"] == "baseline"
    names = [v["name"] for v in report["variants"]]
    assert names[0] == "baseline" and "bf16_cpu" in names and "baseline_onnxruntime" in names
    for row in report["variants"]:
        assert set(ROW_KEYS) <= set(row)
        assert row["latency_ms_p50"] > 0 and row["latency_samples"] == 2
        assert row["ap50_mean"] is not None and row["size_bytes"] > 0
    assert report["variants"][0]["speedup_vs_baseline"] == 1.0
    assert report["variants"][0]["ap50_drop"] == 0.0
    for row in report["variants"][1:]:  # every drop comes with its bootstrap interval
        low, high = row["ap50_drop_ci95"]
        assert low <= high
    assert out.with_suffix(".md").read_text().count("\n| ") >= len(names)
    assert out.with_suffix(".png").stat().st_size > 10_000


def _camera_frames(seed, count, miss_rate):
    """(ground truth, detections, ignore) per frame: two cars each; the detector finds each
    with probability 1 - miss_rate (seeded)."""
    import numpy as np

    from ad_perception.core.types import Detections2D

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        boxes = np.array([[10, 10, 60, 50], [100, 20, 180, 90]], float)
        gt = Detections2D(boxes, np.ones(2), np.array(["car", "car"]))
        found = rng.random(2) >= miss_rate
        detections = Detections2D(boxes[found] + 1.0, rng.uniform(0.5, 1.0, found.sum()),
                                  np.array(["car"] * int(found.sum())))
        frames.append((gt, detections, np.zeros(2, bool)))
    return frames


def test_paired_bootstrap_brackets_the_drop_and_is_zero_for_the_same_model():
    import numpy as np

    from ad_perception.compress.heldout import drop_interval, metrics, resample_scorer

    reference = _camera_frames(0, 60, 0.0)
    worse = [(gt, det, ignore) for (gt, _, ignore), (_, det, _) in
             zip(reference, _camera_frames(1, 60, 0.3), strict=True)]
    same = drop_interval("camera", reference, reference, ["car"], rounds=50, seed=0)
    assert same["low"] == same["high"] == 0.0 and same["rounds"] == 50
    drop = (metrics("camera", reference, ["car"])["ap50_mean"]
            - metrics("camera", worse, ["car"])["ap50_mean"])
    # matched once and re-ranked per resample: the whole sample scores as the metric does
    whole = resample_scorer("camera", worse, ["car"], "ap50_mean")(np.arange(60))
    assert whole == pytest.approx(metrics("camera", worse, ["car"])["ap50_mean"])
    interval = drop_interval("camera", reference, worse, ["car"], rounds=100, seed=0)
    assert drop > 10 and 0 < interval["low"] < drop < interval["high"], (drop, interval)
    with pytest.raises(ValueError, match="needs the same frames: 60 reference vs 59"):
        drop_interval("camera", reference, worse[:59], ["car"])


def test_lidar_resamples_score_as_the_lidar_metric_does():
    import numpy as np

    from ad_perception.compress.heldout import drop_interval, metrics, resample_scorer
    from ad_perception.core.types import Boxes3D
    from ad_perception.eval.metrics import Frame3D

    rng = np.random.default_rng(3)
    frames = []
    for _ in range(40):
        centers = np.array([[10.0, 2.0, 0.0], [25.0, -4.0, 0.0]])
        sizes = np.array([[4.5, 1.9, 1.6]] * 2)
        gt = Boxes3D(centers, sizes, np.zeros(2), np.ones(2), np.array(["car", "car"]))
        found = rng.random(2) >= 0.25
        predictions = Boxes3D(centers[found] + 0.2, sizes[found], np.zeros(found.sum()),
                              rng.uniform(0.3, 1.0, found.sum()),
                              np.array(["car"] * int(found.sum())))
        frames.append(Frame3D(gt, predictions, num_points=np.full(2, 50.0)))
    whole = metrics("lidar", frames, ["car"])
    for key in ("ap50_mean", "car_bev_ap"):
        assert resample_scorer("lidar", frames, ["car"], key)(np.arange(40)) == pytest.approx(
            whole[key])
    same = drop_interval("lidar", frames, frames, ["car"], rounds=30, key="car_bev_ap")
    assert same["low"] == same["high"] == 0.0
