"""``ad-perception eval BAG [BAG ...] --variants baseline,int8 --mode {offline,live,recorded}
[--topics MAPPING.yaml] [--rate R] --out DIR [--json OUT] [--fail-under KEY=VALUE ...]``.

offline: the pipelines run directly on the bags, bags in parallel worker processes.
live: the graph is launched from the launch files, each bag is played onto its topics and
every output recorded to an mcap bag, then scored. recorded: the bags already carry
perception outputs (recorded on a vehicle or by an earlier live run) and are only scored.
All three end in the same scorer and the same report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", type=Path, nargs="+", help="rosbag2 folders with ground truth")
    parser.add_argument("--mode", choices=["offline", "live", "recorded"], default="offline",
                        help="offline: run the pipelines on the bags; live: launch the graph, "
                             "play each bag, record and score its outputs; recorded: score "
                             "outputs already in the bags (default %(default)s)")
    parser.add_argument("--variants", default="baseline",
                        help="comma-separated variant names (default %(default)s)")
    parser.add_argument("--topics", type=Path, metavar="MAPPING.yaml",
                        help="topic mapping for bags from other sources (see eval/topic_map.py)")
    parser.add_argument("--out", type=Path, help="report folder: report.md, report.html, PNGs, "
                        "results.json, per-bag cache (resume by rerunning)")
    parser.add_argument("--json", type=Path, help="also write results.json here")
    parser.add_argument("--fail-under", action="append", default=[], metavar="KEY=VALUE",
                        help="exit 1 if a result is below VALUE, e.g. baseline.camera.map50=0.8")
    parser.add_argument("--fail-over", action="append", default=[], metavar="KEY=VALUE",
                        help="exit 1 if a result is above VALUE, e.g. int8.latency_ms.p99=150")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes for offline/recorded scoring (default: cores, "
                             "at most one per bag)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in total")
    parser.add_argument("--rate", type=float, default=1.0, help="live: playback speed factor")
    parser.add_argument("--clock", action="store_true",
                        help="live: publish /clock and start the graph with use_sim_time")
    parser.add_argument("--launch", type=Path, help="live: launch file of the graph (default: "
                        "launch/perception.launch.py)")
    parser.add_argument("--launch-arg", action="append", default=[], metavar="NAME:=VALUE",
                        help="live: extra launch argument ({camera_model}, {lidar_model}, "
                             "{variant} are filled in)")
    parser.add_argument("--camera-checkpoint", type=Path, help="override the camera model")
    parser.add_argument("--lidar-checkpoint", type=Path, help="override the lidar model")
    parser.add_argument("--fresh", action="store_true", help="ignore cached per-bag results")
    parser.add_argument("--no-progress", action="store_true")


def _fail(message: str) -> int:
    print(f"eval: {message}", file=sys.stderr)
    return 2


def resolve_models(names: list[str], mode: str, camera: Path | None, lidar: Path | None):
    """VariantModels per name; recorded mode needs no model files (only their cards)."""
    from ad_perception.eval.runner import VariantModels
    from ad_perception.eval.variants import resolve_variants

    try:
        variants = resolve_variants(names, camera, lidar)
    except ValueError:
        if mode != "recorded":
            raise
        return [VariantModels(name, None, None) for name in names]
    return [VariantModels(v.name, Path(v.camera_checkpoint), Path(v.lidar_checkpoint))
            for v in variants]


def run(args: argparse.Namespace) -> int:
    from ad_perception.eval import thresholds as th
    from ad_perception.eval.topic_map import TopicMap, TopicMapError

    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not names:
        return _fail("--variants is empty")
    try:
        limits = [th.parse_threshold(t, "under") for t in args.fail_under]
        limits += [th.parse_threshold(t, "over") for t in args.fail_over]
        th.check_variant_names(limits, names)
        topic_map = TopicMap.load(args.topics) if args.topics else TopicMap()
        variants = resolve_models(names, args.mode, args.camera_checkpoint,
                                  args.lidar_checkpoint)
    except (ValueError, TopicMapError) as err:
        return _fail(str(err))
    if args.rate <= 0:
        return _fail(f"--rate must be > 0, got {args.rate}")
    missing = [str(b) for b in args.bags if not b.exists()]
    if missing:
        return _fail(f"no such bag(s): {missing}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)

    from ad_perception.eval.evaluate import evaluate, summary_table

    try:
        results, scores = evaluate(args, variants, topic_map)
    except KeyboardInterrupt:
        where = f"; finished bags are cached in {args.out / 'cache'}" if args.out else ""
        print(f"\neval: interrupted{where}; rerun the same command to resume", file=sys.stderr)
        return 130
    except ValueError as err:  # configuration found wrong while starting (launch file, ...)
        return _fail(str(err))
    text = json.dumps(results, indent=2)
    for path in filter(None, (args.json, args.out and args.out / "results.json")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if args.out:
        from ad_perception.eval.plots import write_figures
        from ad_perception.eval.report import write_report

        figures = write_figures(scores, args.out)
        paths = write_report(results, figures, args.out)
        print(summary_table(results))
        print(f"\nreport: {paths['md']} ({paths['html'].name}, "
              f"{', '.join(p.name for p in figures.values())}, results.json)")
    else:
        print(text)
    status = 0
    for failure in results["failed"]:
        print(f"eval: not scored: {failure['variant']} on {failure['bag']}: {failure['error']}",
              file=sys.stderr)
        status = 1
    failures = th.check(results, limits)
    for failure in failures:
        print(f"eval: threshold failed: {failure}", file=sys.stderr)
    if failures:
        status = 1
    elif limits:
        print(f"eval: all {len(limits)} threshold(s) passed", file=sys.stderr)
    return status


def default_workers(jobs: int) -> int:
    return max(1, min(jobs, os.cpu_count() or 1))
