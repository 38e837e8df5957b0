"""One evaluation run: jobs per (variant, bag), live replays when asked, the results object
(results.json) and the per-variant scores the report plots.

results.json keeps the baseline-models issue's shape (``{"variants": {name: {"camera":
{"ap50", "map50"}, "lidar": {"bev_ap", "map_bev"}, "fused": {"bev_ap", "class_accuracy"},
"latency_ms": {"p50", "p99"}}}}``) and adds: per-distance AP, TP errors, latency per output,
drops, notes, the bags and models used, and the bags that could not be scored (``failed``).
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from ad_perception.eval.runner import Job, VariantModels, cache_file_for, run_jobs
from ad_perception.eval.scoring import VariantScore, evaluate_predictions
from ad_perception.eval.topic_map import TopicMap


def build_jobs(args: argparse.Namespace, variants: list[VariantModels], topic_map: TopicMap,
               recordings: dict[tuple[str, Path], Path] | None = None) -> list[Job]:
    mode = "offline" if args.mode == "offline" else "recorded"
    jobs = []
    workers = _workers(args, len(args.bags) * len(variants))
    for variant in variants:
        for bag in args.bags:
            recording = (recordings or {}).get((variant.name, bag))
            job = Job(variant, Path(bag), mode, topic_map,
                      threads=max(1, args.threads // workers), recording=recording)
            if args.out is not None:
                job = replace(job, cache_file=cache_file_for(args.out, job))
                if args.fresh and job.cache_file.exists():
                    job.cache_file.unlink()
            jobs.append(job)
    return jobs


def _workers(args: argparse.Namespace, jobs: int) -> int:
    """--workers, else one per core for offline runs; scoring recorded outputs takes a second
    or two per bag, less than starting a worker, so it goes parallel only for many bags."""
    from ad_perception.eval.cli import default_workers

    if args.workers > 0:
        return args.workers
    return default_workers(jobs if args.mode == "offline" else jobs // 4)


def evaluate(args: argparse.Namespace, variants: list[VariantModels], topic_map: TopicMap,
             ) -> tuple[dict[str, Any], dict[str, VariantScore]]:
    """Run (or replay, or read) every job and score each variant over its bags."""
    recordings: dict[tuple[str, Path], Path] = {}
    live_failures: list[dict[str, str]] = []
    if args.mode == "live":
        recordings, live_failures = _record_live(args, variants, topic_map)
    jobs = build_jobs(args, variants, topic_map, recordings)
    skipped = {(f["variant"], f["bag"]) for f in live_failures}
    jobs = [j for j in jobs if (j.variant.name, str(j.bag)) not in skipped]
    results_of = run_jobs(jobs, workers=_workers(args, len(jobs)),
                          progress=not args.no_progress)
    failed = list(live_failures)
    by_variant: dict[str, list] = {}
    for result in results_of:
        if result.error is not None:
            failed.append({"variant": result.job.variant.name, "bag": str(result.job.bag),
                           "error": result.error})
        else:
            by_variant.setdefault(result.job.variant.name, []).append(result)
    results: dict[str, Any] = {
        "mode": args.mode, "bags": [str(b) for b in args.bags],
        "command": "ad-perception " + shlex.join(getattr(args, "argv", []) or []),
        "variants": {}, "failed": failed,
    }
    if args.mode == "live":
        results["replay"] = {"rate": args.rate, "clock": args.clock}
    scores: dict[str, VariantScore] = {}
    for variant in variants:
        done = by_variant.get(variant.name, [])
        if not done:
            continue
        score = evaluate_predictions([r.predictions for r in done])
        score.entry.update({
            "models": {"camera": str(variant.camera) if variant.camera else None,
                       "lidar": str(variant.lidar) if variant.lidar else None},
            "bags": [str(r.job.bag) for r in done],
            "cached_bags": sum(r.cached for r in done),
        })
        results["variants"][variant.name] = score.entry
        scores[variant.name] = score
    return results, scores


def _record_live(args: argparse.Namespace, variants: list[VariantModels],
                 topic_map: TopicMap) -> tuple[dict, list]:
    """Replay every bag through the launched graph once per variant (one at a time: two
    graphs on two cores would measure each other), recordings kept under DIR/recordings."""
    from ad_perception.ros_env import apply_ros_environment

    apply_ros_environment()  # before rclpy is imported: DDS stays on loopback
    from ad_perception.ros.live_eval import LiveConfig, record_variant_on_bag

    if args.out is None:
        raise ValueError("--mode live needs --out DIR (the recordings are kept there)")
    config = LiveConfig(launch_file=args.launch, launch_args=list(args.launch_arg),
                        rate=args.rate, clock=args.clock, topic_map=topic_map,
                        progress=not args.no_progress)
    recordings, failures = {}, []
    for variant in variants:
        for bag in args.bags:
            try:
                recordings[(variant.name, bag)] = record_variant_on_bag(
                    variant, Path(bag), args.out / "recordings", config, fresh=args.fresh)
            except RuntimeError as err:  # EvalError and launch failures, with the reason
                failures.append({"variant": variant.name, "bag": str(bag),
                                 "error": f"live replay failed: {err}"})
    return recordings, failures


def summary_table(results: dict[str, Any]) -> str:
    """The comparison table printed at the end of a run (and by the demo)."""
    from ad_perception.eval.report import summary_rows

    header, rows = summary_rows(results)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in
                       enumerate(zip(header, widths, strict=True)))]
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                               enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)
