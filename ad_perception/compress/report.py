"""The compression report: one row per variant in the JSON shape the issue fixes, a printed
table, a markdown file and a Pareto plot (accuracy vs latency) beside the JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ROW_KEYS = ("name", "backend", "precision", "params", "macs", "size_bytes", "latency_ms_p50",
            "latency_ms_p99", "speedup_vs_baseline", "ap50_mean", "ap50_drop")


def build_rows(entries: list[dict[str, Any]], baseline: str = "baseline") -> list[dict[str, Any]]:
    """Rows with speedups and accuracy drops against ``baseline`` (same run, same frames);
    also the speedup over the fastest fp32 variant on any backend."""
    by_name = {e["name"]: e for e in entries}
    if baseline not in by_name:
        raise ValueError(f"no {baseline!r} entry to compare against")
    base = by_name[baseline]
    fp32 = [e for e in entries if e["precision"] == "fp32" and not e.get("compressed")]
    fastest = min(fp32, key=lambda e: e["latency_ms_p50"])
    rows = []
    for entry in entries:
        ap, base_ap = entry.get("ap50_mean"), base.get("ap50_mean")
        row = {**{k: entry.get(k) for k in ROW_KEYS if k in entry},
               "speedup_vs_baseline": base["latency_ms_p50"] / entry["latency_ms_p50"],
               "speedup_vs_fastest_fp32": fastest["latency_ms_p50"] / entry["latency_ms_p50"],
               "ap50_drop": (None if ap is None or base_ap is None else base_ap - ap)}
        if entry.get("car_bev_ap") is not None and base.get("car_bev_ap") is not None:
            row["car_bev_ap_drop"] = base["car_bev_ap"] - entry["car_bev_ap"]  # lidar budget
        rows.append({**row, **{k: v for k, v in entry.items() if k not in row}})
    return rows


def fastest_fp32(rows: list[dict[str, Any]]) -> str:
    fp32 = [r for r in rows if r["precision"] == "fp32" and not r.get("compressed")]
    return min(fp32, key=lambda r: r["latency_ms_p50"])["name"]


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: list[dict[str, Any]], accuracy_label: str) -> list[list[str]]:
    header = ["variant", "backend", "precision", "params M", "GMACs", "size MB", "p50 ms",
              "p99 ms", "x baseline", "x fastest fp32", accuracy_label, "drop", "drop 95% CI"]
    body = [[r["name"], r["backend"], r["precision"], _fmt(r["params"] / 1e6),
             _fmt(r["macs"] / 1e9, 3), _fmt(r["size_bytes"] / 2**20), _fmt(r["latency_ms_p50"]),
             _fmt(r["latency_ms_p99"]), _fmt(r["speedup_vs_baseline"], 1),
             _fmt(r["speedup_vs_fastest_fp32"], 1), _fmt(r.get("ap50_mean")),
             _fmt(r.get("ap50_drop")), _interval(r.get("ap50_drop_ci95"))] for r in rows]
    return [header, *body]


def _interval(bounds: Any) -> str:
    """``[low, high]`` as text; "-" where there is none (the baseline, --bootstrap 0)."""
    if not bounds or any(b is None for b in bounds):
        return "-"
    return f"{bounds[0]:.2f} .. {bounds[1]:.2f}"


def print_table(cells: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for index, row in enumerate(cells):
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def markdown(cells: list[list[str]], header_lines: list[str]) -> str:
    lines = [*header_lines, "", "| " + " | ".join(cells[0]) + " |",
             "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines) + "\n"


def pareto_front(rows: list[dict[str, Any]]) -> list[str]:
    """Names of variants no other variant beats on both latency and accuracy."""
    scored = [r for r in rows if r.get("ap50_mean") is not None]
    front = []
    for row in scored:
        dominated = any(o["latency_ms_p50"] <= row["latency_ms_p50"]
                        and o["ap50_mean"] >= row["ap50_mean"]
                        and (o["latency_ms_p50"] < row["latency_ms_p50"]
                             or o["ap50_mean"] > row["ap50_mean"]) for o in scored)
        if not dominated:
            front.append(row["name"])
    return front


def pareto_plot(rows: list[dict[str, Any]], path: Path, title: str, accuracy_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    scored = [r for r in rows if r.get("ap50_mean") is not None]
    front = set(pareto_front(rows))
    figure, axes = plt.subplots(figsize=(8, 5))
    for row in scored:
        on_front = row["name"] in front
        axes.scatter(row["latency_ms_p50"], row["ap50_mean"], s=60 if on_front else 30,
                     color="tab:red" if on_front else "tab:blue", zorder=3)
        axes.annotate(f"{row['name']}\n{row['backend']}/{row['precision']}",
                      (row["latency_ms_p50"], row["ap50_mean"]), fontsize=7,
                      textcoords="offset points", xytext=(4, 4))
    line = sorted((r for r in scored if r["name"] in front), key=lambda r: r["latency_ms_p50"])
    axes.plot([r["latency_ms_p50"] for r in line], [r["ap50_mean"] for r in line],
              color="tab:red", linewidth=1, zorder=2)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("core latency p50, ms (log scale)")
    axes.set_ylabel(accuracy_label)
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(report: dict[str, Any], json_path: Path, header_lines: list[str],
                 accuracy_label: str) -> tuple[Path, Path]:
    """JSON at ``json_path``, markdown and PNG beside it (same stem)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2))
    cells = table(report["variants"], accuracy_label)
    markdown_path = json_path.with_suffix(".md")
    markdown_path.write_text(markdown(cells, header_lines))
    plot_path = json_path.with_suffix(".png")
    pareto_plot(report["variants"], plot_path, header_lines[0].lstrip("# "), accuracy_label)
    return markdown_path, plot_path
