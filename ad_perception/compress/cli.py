"""``ad-perception compress --model {camera,lidar} --recipe config/compression/NAME.yaml
--calib BAG... --out DIR [--baseline CKPT] [--train BAG...] [--val BAG...]``.

Runs the recipe on the baseline (default: the shipped one) and writes a variant directory that
``load_pipeline``, ``ad-perception eval --variants NAME`` and the benchmark load. Rerunning
the same command resumes its fine-tunes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=["camera", "lidar"], required=True)
    parser.add_argument("--recipe", type=Path, required=True,
                        help="config/compression/NAME.yaml (or a bare shipped NAME)")
    parser.add_argument("--calib", type=Path, nargs="+", required=True,
                        help="bags whose frames calibrate int8 ranges")
    parser.add_argument("--out", type=Path, help="variant directory (default: "
                        "artifacts/variants/MODEL/RECIPE)")
    parser.add_argument("--baseline", type=Path, help="checkpoint to compress (default: the "
                        "shipped baseline)")
    parser.add_argument("--train", type=Path, nargs="*", default=[],
                        help="bags for fine-tuning / distillation / QAT")
    parser.add_argument("--val", type=Path, nargs="*", default=[],
                        help="labelled bags for per-step accuracy and the budget")
    parser.add_argument("--max-val-frames", type=int, default=0,
                        help="use at most this many validation frames (0: all)")
    parser.add_argument("--threads", type=int, default=0, help="torch/backend threads")
    parser.add_argument("--no-progress", action="store_true")


def resolve_recipe_path(value: Path) -> Path:
    """A path as given, or a shipped recipe by bare name (``int8`` -> config/.../int8.yaml)."""
    from ad_perception.compress.recipe import shipped_recipe_dir

    if value.exists() or value.suffix:
        return value
    return shipped_recipe_dir() / f"{value}.yaml"


def run(args: argparse.Namespace) -> int:
    from ad_perception.compress.recipe import RecipeError, load_recipe
    from ad_perception.compress.runner import RecipeRunner, RunOptions
    from ad_perception.eval.variants import default_variant_dir, shipped_baseline

    try:
        recipe_path = resolve_recipe_path(args.recipe)
        recipe = load_recipe(recipe_path)
        baseline = args.baseline or shipped_baseline(args.model)
        if not Path(baseline).is_file():
            raise ValueError(f"baseline checkpoint {baseline} does not exist; train one "
                             f"(ad-perception train {args.model} ...) and pass --baseline")
        out = args.out or default_variant_dir(args.model, recipe.name)
        command = "ad-perception " + shlex.join(getattr(args, "argv", sys.argv[1:]))
        options = RunOptions(args.model, Path(baseline), list(args.calib), Path(out),
                             list(args.train), list(args.val), args.threads, command,
                             recipe_path, not args.no_progress, args.max_val_frames)
        runner = RecipeRunner(recipe, options)
        path = runner.run()
    except (RecipeError, ValueError) as err:
        print(f"compress: {err}", file=sys.stderr)
        return 2
    print(f"variant written: {path}")
    return 0
