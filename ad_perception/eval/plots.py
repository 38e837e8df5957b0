"""The report's figures: precision-recall curves, latency CDF, accuracy-vs-latency Pareto
across variants, AP by distance. Matplotlib's Agg backend: no display needed, same bytes on
every machine for the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ad_perception import CLASSES
from ad_perception.eval.metrics import COCO_RECALL_POINTS, RANGE_BINS_M
from ad_perception.eval.scoring import VariantScore

FIGURES = {
    "pr_curves": "pr_curves.png",
    "latency_cdf": "latency_cdf.png",
    "pareto": "pareto.png",
    "ap_by_distance": "ap_by_distance.png",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean(values: dict) -> float:
    finite = [v for v in values.values() if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both lower latency and higher accuracy."""
    front = []
    for i, (latency, accuracy) in enumerate(points):
        if not (math.isfinite(latency) and math.isfinite(accuracy)):
            continue
        dominated = any(
            other_latency <= latency and other_accuracy >= accuracy
            and (other_latency < latency or other_accuracy > accuracy)
            for j, (other_latency, other_accuracy) in enumerate(points)
            if j != i and math.isfinite(other_latency) and math.isfinite(other_accuracy))
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda k: points[k][0])


def write_figures(scores: dict[str, VariantScore], out_dir: Path) -> dict[str, Path]:
    """Write every figure that has data; returns figure name -> path."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, draw in (("pr_curves", _pr_curves), ("latency_cdf", _latency_cdf),
                       ("pareto", _pareto), ("ap_by_distance", _ap_by_distance)):
        figure = draw(plt, scores)
        if figure is None:
            continue
        path = out_dir / FIGURES[name]
        figure.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(figure)
        written[name] = path
    return written


def _pr_curves(plt, scores: dict[str, VariantScore]):
    present = {c for s in scores.values() for c, p in s.camera_pr.items()
               if not np.all(np.isnan(p))}
    classes = [c for c in CLASSES if c in present] + sorted(present - set(CLASSES))
    if not classes:
        return None
    figure, axes = plt.subplots(1, len(classes), figsize=(3.6 * len(classes), 3.4),
                                squeeze=False)
    for axis, class_name in zip(axes[0], classes, strict=True):
        for variant, score in scores.items():
            precision = score.camera_pr.get(class_name)
            if precision is None or np.all(np.isnan(precision)):
                continue
            ap = score.entry["camera"]["ap50"].get(class_name)
            axis.plot(COCO_RECALL_POINTS, precision,
                      label=f"{variant} (AP {ap:.2f})" if ap is not None else variant)
        axis.set(title=f"camera {class_name}, IoU 0.5", xlabel="recall", xlim=(0, 1),
                 ylim=(0, 1.02))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower left")
    axes[0][0].set_ylabel("precision")
    return figure


def _latency_cdf(plt, scores: dict[str, VariantScore]):
    if not any(s.latency_samples_ms for s in scores.values()):
        return None
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for variant, score in scores.items():
        samples = np.sort(np.asarray(score.latency_samples_ms, dtype=float))
        if len(samples):
            axis.step(samples, np.arange(1, len(samples) + 1) / len(samples), where="post",
                      label=f"{variant} (p99 {np.percentile(samples, 99):.0f} ms)")
    kind = next(iter(scores.values())).entry.get("latency_kind", "")
    axis.set(xlabel=f"latency, ms ({kind})", ylabel="fraction of frames", ylim=(0, 1.02))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def _pareto(plt, scores: dict[str, VariantScore]):
    names = list(scores)
    latency = [scores[n].entry["latency_ms"].get("p50") for n in names]
    latency = [math.nan if v is None else v for v in latency]
    panels = []
    for title, key in (("camera mAP@0.5", ("camera", "map50")),
                       ("fused BEV mAP", ("fused", "map_bev"))):
        accuracy = [scores[n].entry[key[0]].get(key[1]) for n in names]
        accuracy = [math.nan if v is None else v for v in accuracy]
        if any(math.isfinite(a) and math.isfinite(t) for a, t in zip(accuracy, latency,
                                                                    strict=True)):
            panels.append((title, accuracy))
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for axis, (title, accuracy) in zip(axes[0], panels, strict=True):
        points = list(zip(latency, accuracy, strict=True))
        axis.scatter(latency, accuracy, zorder=3)
        for name, (x, y) in zip(names, points, strict=True):
            if math.isfinite(x) and math.isfinite(y):
                axis.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4),
                              fontsize=8)
        front = pareto_front(points)
        if len(front) > 1:
            axis.plot([points[i][0] for i in front], [points[i][1] for i in front], "--",
                      color="gray", label="Pareto front")
            axis.legend(fontsize=8)
        axis.set(title=f"{title} vs latency", xlabel="latency p50, ms", ylabel=title)
        axis.grid(alpha=0.3)
    return figure


def _ap_by_distance(plt, scores: dict[str, VariantScore]):
    bins = list(RANGE_BINS_M)
    panels = []
    for output in ("lidar", "fused"):
        table = {}
        for variant, score in scores.items():
            by_range = score.entry[output].get("dist_ap_by_range") or {}
            table[variant] = [_mean(by_range.get(b, {})) for b in bins]
        if any(math.isfinite(v) for row in table.values() for v in row):
            panels.append((output, table))
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for axis, (output, table) in zip(axes[0], panels, strict=True):
        width = 0.8 / max(1, len(table))
        for k, (variant, values) in enumerate(table.items()):
            positions = np.arange(len(bins)) + k * width
            axis.bar(positions, np.nan_to_num(values), width, label=variant)
        axis.set_xticks(np.arange(len(bins)) + width * (len(table) - 1) / 2,
                        [f"{b} m" for b in bins])
        axis.set(title=f"{output}: centre-distance AP by range", ylabel="mean AP", ylim=(0, 1))
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize=8)
    return figure
