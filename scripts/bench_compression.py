#!/usr/bin/env python3
"""Compression benchmark: every variant of one detector measured in the same run.

The baseline is the fp32 torch eager model; it also runs on every fp32 backend (onnxruntime,
OpenVINO; torch.compile with --compile) and in OpenVINO bf16, next to every compressed
variant directory (artifacts/variants/MODEL/*, written by `ad-perception compress`). For each:
params, MACs, file size, backend/precision, core latency (warm-up, then interleaved shuffled
rounds; median and p99) and accuracy on held-out bags (camera AP@0.5 per class and mean,
lidar BEV AP; points 0-100) with a paired-bootstrap 95 % interval of each variant's drop
(the same resampled frames for baseline and variant). Prints a table with speedups over the
baseline and over the fastest fp32 variant, writes JSON (shape fixed by issue 5), markdown and
a Pareto PNG beside it.

    .venv/bin/python scripts/bench_compression.py --model camera --json bench/camera.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["camera", "lidar"], required=True)
    parser.add_argument("--json", type=Path, required=True, help="output JSON (.md/.png beside)")
    parser.add_argument("--variants", nargs="*", default=None,
                        help="variant names or directories (default: every written variant)")
    parser.add_argument("--baseline", type=Path, help="fp32 checkpoint (default: shipped)")
    parser.add_argument("--heldout", type=Path, nargs="*", default=None,
                        help="held-out bags (default: data/heldout/*)")
    parser.add_argument("--max-frames", type=int, default=0, help="accuracy frames (0: all)")
    parser.add_argument("--threads", type=int, default=2, help="threads for every backend")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-turn", type=int, default=3, help="calls per variant per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="add torch.compile fp32")
    parser.add_argument("--no-accuracy", action="store_true", help="latency only")
    parser.add_argument("--bootstrap", type=int, default=200,
                        help="paired bootstrap rounds for the 95%% interval of each accuracy "
                             "drop (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def first_frame(kind: str, bags: list[Path], config):
    from ad_perception.compress import heldout

    frames = (heldout.camera_frames(bags, config.class_names, 1) if kind == "camera"
              else heldout.lidar_frames(bags, config, 1))
    return next(iter(frames))[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from ad_perception.compress import bench, heldout, report
    from ad_perception.eval.variants import shipped_baseline

    torch.set_num_threads(args.threads)
    baseline = args.baseline or shipped_baseline(args.model)
    if not Path(baseline).is_file():
        print(f"bench_compression: no baseline checkpoint at {baseline} (--baseline)",
              file=sys.stderr)
        return 2
    bags = args.heldout if args.heldout is not None else sorted(
        p for p in (ROOT / "data" / "heldout").glob("*") if (p / "metadata.yaml").is_file())
    if not bags:
        print("bench_compression: no held-out bags (--heldout BAG..., or generate data/heldout "
              "with `ad-perception dataset`)", file=sys.stderr)
        return 2
    isa = bench.cpu_isa_flags()
    print(f"CPU: {bench.cpu_name()}; ISA: {' '.join(isa) or 'none of ' + str(bench.ISA_FLAGS)}")
    print(f"threads: {args.threads} for torch, onnxruntime (spinning off) and OpenVINO")
    variants = bench.discover(args.model, Path(baseline), args.variants, args.compile)
    pipelines = {v.name: bench.load(v, args.threads) for v in variants}
    frame = first_frame(args.model, bags, pipelines["baseline"].config)
    calls = {}
    for variant in variants:
        pipeline = pipelines[variant.name]
        arguments = bench.core_arguments(args.model, pipeline, frame)
        calls[variant.name] = (lambda core, a: lambda: core(*a))(pipeline.core, arguments)
    print(f"timing {len(calls)} variants: {args.warmup} warm-up calls, {args.rounds} shuffled "
          f"rounds x {args.per_turn} calls")
    samples = bench.time_interleaved(calls, args.rounds, args.per_turn, args.warmup, args.seed,
                                     lambda r: print(f"  round {r + 1}/{args.rounds}",
                                                     flush=True))
    entries = []
    scored = {}
    for variant in variants:
        timing = bench.summarise(samples[variant.name])
        entry = {"name": variant.name, "backend": variant.backend,
                 "precision": variant.precision, **bench.model_stats(args.model, variant),
                 "latency_ms_p50": timing["p50"], "latency_ms_p99": timing["p99"],
                 "latency_samples": timing["n"], "path": str(variant.path),
                 "compressed": Path(variant.path).is_dir(), "note": variant.note}
        if not args.no_accuracy:
            print(f"accuracy of {variant.name} on {len(bags)} held-out bags ...", flush=True)
            pipeline = pipelines[variant.name]
            scored[variant.name] = heldout.scored_frames(args.model, pipeline, bags,
                                                         args.max_frames)
            entry.update(heldout.metrics(args.model, scored[variant.name],
                                         pipeline.config.class_names))
        entries.append(entry)
    if scored and args.bootstrap > 0:
        class_names = pipelines["baseline"].config.class_names
        keys = ["ap50_mean"] + (["car_bev_ap"] if args.model == "lidar" else [])
        for entry in entries:
            if entry["name"] == "baseline":
                continue
            print(f"bootstrap of {entry['name']}'s accuracy drop ({args.bootstrap} rounds) ...",
                  flush=True)
            for key in keys:
                interval = heldout.drop_interval(
                    args.model, scored["baseline"], scored[entry["name"]], class_names,
                    args.bootstrap, args.seed, key=key)
                name = "ap50_drop_ci95" if key == "ap50_mean" else "car_bev_ap_drop_ci95"
                entry[name] = [interval["low"], interval["high"]]
    rows = report.build_rows(entries)
    label = "AP@0.5 mean" if args.model == "camera" else "BEV AP mean"
    result = {
        "baseline": "baseline", "model": args.model, "fastest_fp32": report.fastest_fp32(rows),
        "units": {"latency": "ms per core call (batch 1)", "accuracy": "points (0-100)"},
        "machine": {"cpu": bench.cpu_name(), "isa": isa, "threads": args.threads,
                    "python": platform.python_version(), "torch": torch.__version__},
        "heldout": [str(b) for b in bags],
        "command": "scripts/bench_compression.py " + shlex.join(argv or sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "pareto_front": report.pareto_front(rows), "variants": rows,
    }
    header = [f"# Compression benchmark: {args.model} detector ({result['date']})",
              f"CPU {result['machine']['cpu']} ({' '.join(isa)}), {args.threads} threads; "
              f"held-out bags: {len(bags)}; accuracy in points; speedups against the fp32 "
              f"torch eager baseline and the fastest fp32 variant "
              f"({result['fastest_fp32']}), measured in the same run."]
    cells = report.table(rows, label)
    print()
    report.print_table(cells)
    markdown_path, plot_path = report.write_report(result, args.json, header, label)
    print(f"\nwrote {args.json}, {markdown_path}, {plot_path}")
    print(json.dumps({r["name"]: round(r["speedup_vs_baseline"], 2) for r in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
