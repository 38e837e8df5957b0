#!/usr/bin/env python3
"""Where an OpenVINO variant spends its time: OpenVINO's own per-layer counters
(``PERF_COUNT``), the median of each over many inferences, grouped by network part.

Found the stem of the 50 %-pruned int8 camera detector (7x7 conv, max-pool and the input's
quantise/reorder) to take a third of its inference time, which channel pruning cannot
reduce: the reason for the ``restem`` compression step. Latency here is not a benchmark (the
counters add overhead; use ``bench_compression.py`` for that); the shares are what matter.
Parts are read from node names, which follow the torch modules in models exported after PTQ;
a model adopted from QAT is traced by NNCF and names its convolutions after their weight
scaling (``Multiply_N``), so its layers land in ``other``.

    .venv/bin/python scripts/profile_openvino.py --model camera --variants int8 prune50_int8 \\
        [--threads 1] [--rounds 50] [--top 12] [--json OUT]
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# network part of a layer, from the exported node names (first match wins)
PARTS = (("trunk/layer", "trunk stages"), ("trunk/", "stem"), ("fpn", "pyramid"),
         ("heads", "heads"), ("bev_backbone", "bev backbone"), ("shared", "bev backbone"))


def part_of(node_name: str) -> str:
    """The network part a profiled node belongs to; input quantise/reorder nodes are named
    after the input and count as ``input`` (with a channels-last input the plugin fuses the
    layout transpose into the input's quantiser and names it ``FakeQuantize_<n>``)."""
    name = node_name.lower()
    if name.startswith(("input", "fakequantize_", "transpose_")):
        return "input"
    for marker, part in PARTS:
        if marker in name:
            return part
    return "other"


def profile(xml: Path, hint: str, threads: int, rounds: int, seed: int,
            channels_last: bool = False) -> dict:
    """Per-layer times of the IR at ``xml`` compiled as the runtime compiles it (camera cores
    take their input channels last there)."""
    import openvino as ov

    from ad_perception.runtime.openvino_backend import channels_last_model, compile_config

    core = ov.Core()
    model = core.read_model(str(xml))
    if channels_last:
        model = channels_last_model(model, str(xml))
    config = compile_config(hint, threads) | {"PERF_COUNT": True}
    request = core.compile_model(model, "CPU", config).create_infer_request()
    shape = [int(d) for d in model.inputs[0].get_shape()]
    tensor = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    for _ in range(5):
        request.infer({0: tensor}, share_inputs=True)
    samples: dict[str, list[float]] = collections.defaultdict(list)
    kinds: dict[str, str] = {}
    wall = []
    for _ in range(rounds):
        started = time.perf_counter()
        request.infer({0: tensor}, share_inputs=True)
        wall.append((time.perf_counter() - started) * 1e3)
        for info in request.profiling_info:
            samples[info.node_name].append(info.real_time.total_seconds() * 1e3)
            kinds[info.node_name] = f"{info.node_type}/{info.exec_type}"
    # medians, not means: one preempted round would otherwise inflate every layer it hit
    layers = collections.Counter({name: float(np.median(v)) for name, v in samples.items()})
    total = sum(layers.values())
    parts: collections.Counter = collections.Counter()
    for name, ms in layers.items():
        parts[part_of(name)] += ms
    return {"wall_ms_p50": float(np.median(wall)), "counted_ms": total,
            "parts": {part: {"ms": ms, "share": ms / total} for part, ms in parts.most_common()},
            "layers": [{"name": name, "kind": kinds[name], "ms": ms, "share": ms / total}
                       for name, ms in layers.most_common()]}


def main(argv: list[str] | None = None) -> int:
    from ad_perception.eval.variants import variant_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("camera", "lidar"), default="camera")
    parser.add_argument("--variants", nargs="+", default=["prune50_int8"],
                        help="variant names (built or shipped) or variant directories")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--top", type=int, default=12, help="layers listed per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = {}
    for name in args.variants:
        directory = Path(name) if Path(name).is_dir() else variant_dir(args.model, name)
        xml = directory / "model.xml"
        if not xml.is_file():
            parser.error(f"{name}: no OpenVINO model at {xml} (an OpenVINO variant is needed)")
        card = json.loads((directory / "card.json").read_text())
        hint = card.get("io", {}).get("openvino_precision_hint") or "f32"
        result = profile(xml, hint, args.threads, args.rounds, args.seed,
                         channels_last=args.model == "camera")
        results[name] = {"path": str(directory), "precision_hint": hint, **result}
        print(f"\n{name}: {result['wall_ms_p50']:.2f} ms p50 wall, "
              f"{result['counted_ms']:.2f} ms in layer counters ({args.threads} thread(s))")
        for part, entry in result["parts"].items():
            print(f"  {part:<14} {entry['ms']:6.2f} ms  {100 * entry['share']:5.1f} %")
        for layer in result["layers"][:args.top]:
            print(f"    {layer['ms']:6.3f} ms  {layer['kind']:<32} {layer['name'][:70]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d"), "threads": args.threads, "rounds": args.rounds,
            "variants": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
