#!/usr/bin/env python3
"""Promote trained checkpoints to the shipped baselines and measure them on held-out bags.

Copies ``best.pt`` (+ card) of a camera and a lidar training run into
``ad_perception/models/weights/``, evaluates the pair offline on held-out bags (seeds never
used in training), and writes the measured numbers into both cards and into
``docs/results/baseline_heldout.json``. The cards then say what was measured, on which data
and with which command; ``test/unit/test_shipped_models.py`` re-measures and compares.

    .venv/bin/python scripts/ship_baselines.py --camera runs/camera/best.pt \
        --lidar runs/lidar/best.pt --heldout data/heldout/seed3000 data/heldout/seed3001 ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ad_perception.eval.variants import WEIGHTS_DIR  # noqa: E402
from ad_perception.models.checkpoint import card_path, load_checkpoint  # noqa: E402

RESULTS = ROOT / "docs" / "results" / "baseline_heldout.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--camera", type=Path, required=True)
    parser.add_argument("--lidar", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, nargs="+", required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    shipped = {}
    for kind, source in (("camera", args.camera), ("lidar", args.lidar)):
        load_checkpoint(source)  # refuse to ship a file that does not match its card
        target = WEIGHTS_DIR / f"{kind}_baseline.pt"
        shutil.copyfile(source, target)
        shutil.copyfile(card_path(source), card_path(target))
        shipped[kind] = target

    command = [sys.executable, "-m", "ad_perception.cli", "eval", *map(str, args.heldout),
               "--mode", "offline", "--variants", "baseline", "--json", str(RESULTS),
               "--threads", str(args.threads), "--no-progress"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    result = json.loads(RESULTS.read_text())["variants"]["baseline"]
    manifests = [bag.parent.parent / "manifest.json" for bag in args.heldout]
    frames = {json.loads(m.read_text())["frames"] for m in manifests if m.exists()}
    heldout = {
        "command": "ad-perception eval " + " ".join(str(b) for b in args.heldout)
        + " --mode offline --variants baseline",
        "bags": [b.name for b in args.heldout],
        "seeds": [int(b.name.removeprefix("seed")) for b in args.heldout],
        "frames_per_bag": frames.pop() if len(frames) == 1 else None,
        "threads": args.threads,
    }
    for kind, target in shipped.items():
        card = json.loads(card_path(target).read_text())
        measured = {"camera": {"camera": result["camera"]},
                    "lidar": {"lidar": result["lidar"], "fused": result["fused"]}}[kind]
        card["metrics"]["heldout"] = {**heldout, **measured,
                                      "latency_ms_pipeline": result["latency_ms"]}
        card_path(target).write_text(json.dumps(card, indent=2, sort_keys=True))
        load_checkpoint(target)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
