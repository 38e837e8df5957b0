#!/usr/bin/env python3
"""Camera pre-processing benchmark: the shipped letterbox (resize, then a per-channel lookup
of the normalised levels straight into the channels-first tensor), its channels-last form
(what OpenVINO cores take: pad in uint8, one 3-channel ``cv2.LUT``) and the arithmetic
reference (pad, cast, subtract, divide, transpose), in the same run, on one thread.

The camera detector letterboxes every frame in its worker thread at the moment the lidar
sweep of the same instant arrives, so on two cores every millisecond here also competes with
the lidar's transport. Both forms give bit-identical tensors (checked here too).

    .venv/bin/python scripts/bench_preprocess.py [--size 896x512] [--image 1280x720]
        [--rounds 200] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _pair(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=_pair, default=(896, 512), help="network input WxH")
    parser.add_argument("--image", type=_pair, default=(1280, 720), help="camera image WxH")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import cv2
    import torch

    from ad_perception.models.letterbox import letterbox, letterbox_reference

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    width, height = args.image
    image = np.random.default_rng(args.seed).integers(0, 256, (height, width, 3),
                                                      dtype=np.uint8)
    def channels_last(picture: np.ndarray, size: tuple[int, int]) -> tuple:
        return letterbox(picture, size, layout="NHWC")

    forms = {"reference": letterbox_reference, "shipped": letterbox,
             "channels_last": channels_last}
    outputs = {name: form(image, args.size)[0].numpy() for name, form in forms.items()}
    identical = outputs["reference"].tobytes() == outputs["shipped"].tobytes() == \
        outputs["channels_last"].transpose(0, 3, 1, 2).copy().tobytes()
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(10):  # warm-up
        for form in forms.values():
            form(image, args.size)
    for index in range(args.rounds):  # interleaved, alternating order
        for name in (list(forms) if index % 2 else list(forms)[::-1]):
            started = time.perf_counter()
            forms[name](image, args.size)
            times[name].append((time.perf_counter() - started) * 1e3)
    result = {name: {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99))}
              for name, t in times.items()}
    ratio = result["reference"]["p50_ms"] / result["shipped"]["p50_ms"]
    last_ratio = result["reference"]["p50_ms"] / result["channels_last"]["p50_ms"]
    for name, figures in result.items():
        print(f"{name:<13} p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms")
    print(f"speed-up over the reference (p50): shipped {ratio:.2f}x, channels last "
          f"{last_ratio:.2f}x; bit-identical: {identical}")
    if args.json:
        args.json.write_text(json.dumps({
            "image": args.image, "size": args.size, "rounds": args.rounds, "forms": result,
            "speedup": ratio, "speedup_channels_last": last_ratio, "bit_identical": identical,
            "machine": {"platform": platform.platform(), "processor": platform.processor(),
                        "python": platform.python_version()},
            "date": time.strftime("%Y-%m-%d")}, indent=2))
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
