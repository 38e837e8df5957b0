"""``ad-perception dataset``: a set of embedded-world bags (train / val / held-out splits by
seed), generated one bag per seed and resumable: complete bags are kept, a bag left half
written by an interruption is regenerated. A manifest records what was asked for, so a
model card can say exactly which data trained it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from ad_perception import __version__

# The splits the shipped baselines were trained and measured on (see their model cards).
DEFAULT_SPLITS = {"train": "1000-1019", "val": "2000-2003", "heldout": "3000-3002"}


def parse_seeds(text: str) -> list[int]:
    """'1000-1019' or '1,5,9' or '3000-3002,3010' -> sorted unique seeds."""
    seeds: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError as err:
            raise ValueError(f"bad seed range {part!r}; use e.g. 1000-1019 or 1,2,3") from err
        if last < first:
            raise ValueError(f"seed range {part!r} is empty")
        seeds.update(range(first, last + 1))
    if not seeds:
        raise ValueError("no seeds given")
    return sorted(seeds)


def bag_is_complete(path: Path) -> bool:
    """Written to the end: metadata.yaml is the last thing rosbags writes on close."""
    return (path / "metadata.yaml").is_file()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("data"), help="dataset root")
    parser.add_argument("--frames", type=int, default=50, help="frames per bag (10 Hz)")
    for split, seeds in DEFAULT_SPLITS.items():
        parser.add_argument(f"--{split}-seeds", default=seeds,
                            help=f"seeds of the {split} bags (default {seeds}); '' for none")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument("--preset", choices=["default", "carla"], default="default")


def run(args: argparse.Namespace) -> int:
    from ad_perception.sim.bag_output import generate_bag

    try:
        plan = {split: parse_seeds(getattr(args, f"{split}_seeds"))
                for split in DEFAULT_SPLITS if getattr(args, f"{split}_seeds")}
    except ValueError as err:
        print(f"dataset: {err}", file=sys.stderr)
        return 2
    manifest_path = args.out / "manifest.json"
    manifest = {"generator_version": __version__, "frames": args.frames,
                "storage": args.storage, "preset": args.preset,
                "splits": {split: seeds for split, seeds in plan.items()}}
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text())
        changed = {k for k in ("frames", "storage", "preset") if previous.get(k) != manifest[k]}
        if changed:
            print(f"dataset: {args.out} was generated with different {sorted(changed)}; "
                  f"choose another --out or delete it", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    jobs = [(split, seed) for split, seeds in plan.items() for seed in seeds]
    made = 0
    for split, seed in tqdm(jobs, desc="bags", unit="bag"):
        path = args.out / split / f"seed{seed}"
        if bag_is_complete(path):
            continue
        if path.exists():  # interrupted half-way: start that bag again
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        generate_bag(path, args.frames, seed, args.storage, args.preset, progress=False)
        made += 1
    print(f"dataset {args.out}: {len(jobs)} bags ({made} generated now, "
          f"{len(jobs) - made} already complete)")
    return 0
