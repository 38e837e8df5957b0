"""report.md and report.html from the results of every variant.

The report is built once as a list of blocks (headings, tables, lists, figures) and rendered
twice, so the markdown and the HTML never disagree. The HTML embeds its figures as data URIs:
one file that can be mailed or attached to a CI run. "What could not be scored" is a section
of its own, not a log line: a number is only as good as the frames behind it.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from ad_perception import CLASSES
from ad_perception.eval.metrics import RANGE_BINS_M

Block = tuple[str, Any]  # ("h2", text) | ("p", text) | ("table", (header, rows)) | ...


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def speedups(variants: dict[str, dict], reference: str = "baseline") -> dict[str, float | None]:
    """Headline-latency p50 of the reference over each variant's (>1: faster)."""
    names = list(variants)
    if not names:
        return {}
    base = reference if reference in variants else names[0]
    base_p50 = variants[base]["latency_ms"].get("p50")
    out = {}
    for name, entry in variants.items():
        p50 = entry["latency_ms"].get("p50")
        out[name] = base_p50 / p50 if base_p50 and p50 else None
    return out


def summary_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    variants = results["variants"]
    speed = speedups(variants)
    header = ["variant", "cam mAP50", "lidar BEV mAP", "fused BEV mAP", "fused cls acc",
              "p50 ms", "p90 ms", "p99 ms", "max ms", "drops", "speedup"]
    rows = []
    for name, entry in variants.items():
        latency = entry["latency_ms"]
        dropped = sum(d["dropped"] for d in entry.get("drops", {}).values())
        frames_in = sum(d["frames_in"] for d in entry.get("drops", {}).values())
        rows.append([name, fmt(entry["camera"]["map50"]), fmt(entry["lidar"]["map_bev"]),
                     fmt(entry["fused"]["map_bev"]), fmt(entry["fused"]["class_accuracy"]),
                     fmt(latency.get("p50"), 1), fmt(latency.get("p90"), 1),
                     fmt(latency.get("p99"), 1), fmt(latency.get("max"), 1),
                     f"{dropped}/{frames_in}",
                     "–" if speed.get(name) is None else f"{speed[name]:.2f}×"])
    return header, rows


def build_blocks(results: dict[str, Any], figures: dict[str, Path]) -> list[Block]:
    variants = results["variants"]
    blocks: list[Block] = [("h1", "ad_perception evaluation")]
    blocks.append(("p", f"Mode **{results.get('mode', '?')}**, {len(results.get('bags', []))} "
                        f"bag(s), variants: {', '.join(variants) or 'none'}. Latency: "
                        f"{_latency_words(results)}"))
    if results.get("command"):
        blocks.append(("code", results["command"]))
    blocks += [("h2", "Summary"), ("table", summary_rows(results))]
    if "pareto" in figures:
        blocks.append(("img", ("Accuracy vs latency across variants", figures["pareto"])))
    blocks.append(("h2", "AP per class"))
    header = ["variant", "output", *CLASSES]
    rows = []
    for name, entry in variants.items():
        for output, key in (("camera AP50", ("camera", "ap50")),
                            ("lidar BEV AP", ("lidar", "bev_ap")),
                            ("fused BEV AP", ("fused", "bev_ap")),
                            ("fused 3D AP", ("fused", "ap_3d"))):
            per_class = entry[key[0]].get(key[1]) or {}
            rows.append([name, output, *(fmt(per_class.get(c)) for c in CLASSES)])
    blocks.append(("table", (header, rows)))
    if "pr_curves" in figures:
        blocks.append(("img", ("Camera precision-recall at IoU 0.5", figures["pr_curves"])))
    blocks += _distance_blocks(variants, figures) + _error_blocks(variants)
    blocks += _latency_blocks(variants, figures) + _unscored_blocks(results)
    return blocks


def _latency_words(results: dict[str, Any]) -> str:
    if results.get("mode") == "offline":
        return ("compute time per frame (camera + lidar + fusion, pipelines called directly; "
                "no transport).")
    return ("end to end, receive time of the output minus the time its sensor message was "
            "published (header stamp on the replay clock). Frames the graph dropped count as "
            "frames where nothing was detected (planning got nothing either); --mode offline "
            "scores the models without that effect.")


def _distance_blocks(variants: dict[str, dict], figures: dict[str, Path]) -> list[Block]:
    header = ["variant", "output", *(f"{b} m" for b in RANGE_BINS_M)]
    rows = []
    for name, entry in variants.items():
        for output in ("lidar", "fused"):
            by_range = entry[output].get("dist_ap_by_range") or {}
            cells = []
            for bin_name in RANGE_BINS_M:
                values = [v for v in (by_range.get(bin_name) or {}).values()
                          if v is not None and math.isfinite(v)]
                cells.append(fmt(sum(values) / len(values)) if values else "–")
            rows.append([name, output, *cells])
    blocks: list[Block] = [("h2", "AP by distance (centre-distance AP, mean over classes)"),
                           ("table", (header, rows))]
    if "ap_by_distance" in figures:
        blocks.append(("img", ("AP by distance", figures["ap_by_distance"])))
    return blocks


def _error_blocks(variants: dict[str, dict]) -> list[Block]:
    header = ["variant", "class", "TPs", "translation m", "scale 1-IoU", "orientation rad"]
    rows = []
    for name, entry in variants.items():
        for class_name, errors in (entry["fused"].get("tp_errors") or {}).items():
            if errors.get("count"):
                rows.append([name, class_name, str(errors["count"]), fmt(errors["trans_err"]),
                             fmt(errors["scale_err"]), fmt(errors["orient_err"])])
    if not rows:
        return []
    return [("h2", "True-positive errors (fused, matched within 2 m)"), ("table", (header, rows))]


def _latency_blocks(variants: dict[str, dict], figures: dict[str, Path]) -> list[Block]:
    header = ["variant", "output", "p50 ms", "p90 ms", "p99 ms", "max ms", "frames out/in"]
    rows = []
    for name, entry in variants.items():
        drops = entry.get("drops", {})
        for output, stats in (entry.get("latency_by_output_ms") or {}).items():
            drop = drops.get(output, {})
            rows.append([name, output, fmt(stats.get("p50"), 1), fmt(stats.get("p90"), 1),
                         fmt(stats.get("p99"), 1), fmt(stats.get("max"), 1),
                         f"{drop.get('frames_out', '?')}/{drop.get('frames_in', '?')}"])
    blocks: list[Block] = [("h2", "Latency")]
    if rows:
        blocks.append(("table", (header, rows)))
    if "latency_cdf" in figures:
        blocks.append(("img", ("Latency CDF", figures["latency_cdf"])))
    return blocks


def _unscored_blocks(results: dict[str, Any]) -> list[Block]:
    items = [f"**not scored** {f['variant']} on {f['bag']}: {f['error']}"
             for f in results.get("failed", [])]
    for name, entry in results["variants"].items():
        items += [f"{name}: {note}" for note in entry.get("notes", [])]
    items += [f"**variant not evaluated** {m['variant']}: {m['reason']}"
              for m in results.get("missing_variants", [])]
    return [("h2", "What could not be scored"),
            ("ul", items) if items else ("p", "Everything in the bags was scored.")]


# ------------------------------------------------------------------------------ renderers
def to_markdown(blocks: list[Block], base: Path) -> str:
    lines: list[str] = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            lines += [("# " if kind == "h1" else "## ") + content, ""]
        elif kind == "p":
            lines += [content, ""]
        elif kind == "code":
            lines += ["```", content, "```", ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in content] + [""]
        elif kind == "table":
            header, rows = content
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            caption, path = content
            lines += [f"![{caption}]({Path(path).relative_to(base).as_posix()})", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block]) -> str:
    body: list[str] = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(content)}</p>")
        elif kind == "code":
            body.append(f"<pre>{html.escape(content)}</pre>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in content) + "</ul>")
        elif kind == "table":
            header, rows = content
            cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            body.append(f"<table><tr>{cells}</tr>" + "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in rows) + "</table>")
        elif kind == "img":
            caption, path = content
            data = base64.b64encode(Path(path).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(caption)}" '
                        f'src="data:image/png;base64,{data}"><figcaption>'
                        f"{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
             "pre{background:#f6f6f6;padding:8px;overflow-x:auto}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>ad_perception "
            f"evaluation</title><style>{style}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")


def write_report(results: dict[str, Any], figures: dict[str, Path], out_dir: Path,
                 ) -> dict[str, Path]:
    blocks = build_blocks(results, figures)
    paths = {"md": out_dir / "report.md", "html": out_dir / "report.html"}
    paths["md"].write_text(to_markdown(blocks, out_dir))
    paths["html"].write_text(to_html(blocks))
    return paths
