"""Run a recipe: baseline checkpoint in, variant directory out.

The teacher is the baseline, frozen; the student starts as a copy and goes through the
recipe's steps in order. After every step the runner records what it changed (params, MACs,
accuracy on the validation frames, time). Fine-tunes live in ``OUT/work/step<N>_<kind>_<hash>``
(the hash covers the baseline, the data and every step up to this one), so rerunning the same
command resumes where it stopped, and a changed recipe never resumes a stale run.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ad_perception.compress import steps as step_impl
from ad_perception.compress.data import CompressData
from ad_perception.compress.export import exportable_core
from ad_perception.compress.frames import evaluate_core, torch_core_fn
from ad_perception.compress.prune import measure_size
from ad_perception.compress.recipe import GraphParams, Recipe, RecipeError
from ad_perception.compress.variant import Deploy, write_variant


@dataclass
class RunOptions:
    kind: str
    baseline: Path
    calib: list[Path]
    out: Path
    train: list[Path] = field(default_factory=list)
    val: list[Path] = field(default_factory=list)
    threads: int = 0
    command: str = ""
    recipe_path: Path | None = None
    progress: bool = True
    max_val_frames: int = 0  # 0: all validation frames


class RecipeRunner:
    def __init__(self, recipe: Recipe, options: RunOptions, log: Any = print) -> None:
        from ad_perception.models.checkpoint import CheckpointError, load_checkpoint

        if options.kind not in recipe.models:
            raise RecipeError(f"recipe {recipe.name!r} is for {list(recipe.models)}, not "
                              f"{options.kind!r}")
        try:
            teacher, card = load_checkpoint(options.baseline)
        except CheckpointError as err:
            raise ValueError(f"baseline: {err}") from err
        if card.model != options.kind:
            raise ValueError(f"baseline {options.baseline} is a {card.model} model, not "
                             f"{options.kind}")
        if options.threads:
            import torch

            torch.set_num_threads(options.threads)
        from ad_perception.models.checkpoint import MODEL_KINDS

        self.recipe, self.options, self.log = recipe, options, log
        self.kind = options.kind
        self.teacher = teacher.eval()
        self.baseline_sha256 = card.sha256
        self.config = MODEL_KINDS[card.model].config_type.from_dict(card.config)
        self.student = copy.deepcopy(self.teacher)
        self.work = options.out / "work"
        val_bags = options.val or options.calib
        if not options.val:
            log("compress: no --val given; accuracy is measured on the calibration bags, "
                "which flatters int8 (give held-apart --val bags for a fair number)")
        self.val_source = "val" if options.val else "calib"
        self.data = CompressData(options.kind, self.config, options.calib, options.train,
                                 val_bags, self.work / "cache", options.progress)
        self.deploy = Deploy()
        self.graph = GraphParams(fold_batchnorm=True, simplify=False,
                                 merge_sibling_convs=False)
        self.records: list[dict[str, Any]] = []
        self.baseline_metric: dict[str, Any] | None = None
        self.current_metric: dict[str, Any] | None = None
        self.ptq_params: Any = None
        self.ptq_missed = False

    # -- helpers used by the steps -------------------------------------------------------
    def step_dir(self, index: int, kind: str) -> Path:
        key = json.dumps({"baseline": self.baseline_sha256, "kind": self.kind,
                          "train": [str(p) for p in self.options.train],
                          "steps": [s.to_dict() for s in self.recipe.steps[:index]]},
                         sort_keys=True)
        return self.work / f"step{index}_{kind}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"

    def produced_by(self, index: int, seed: int = 0) -> dict[str, Any]:
        return {"command": self.options.command, "seed": seed,
                "data": [str(p) for p in self.options.train], "recipe": self.recipe.name,
                "step": index}

    def val_frames(self, model: Any | None = None) -> Any:
        from ad_perception.compress.data import subset

        samples = subset(self.data.val(), self.options.max_val_frames, 0)
        return self.data.frames(samples, model or self.student, self.config)

    def measure(self, model: Any | None = None) -> dict[str, Any]:
        """Accuracy of a torch model's core on the validation frames, in points."""
        model = model or self.student
        return evaluate_core(self.val_frames(model), torch_core_fn(exportable_core(model,
                                                                                    self.kind)))

    def allowed_ptq_drop(self, params: Any) -> float:
        if params.max_drop is not None:
            return float(params.max_drop)
        budget = self.recipe.budget
        used = 0.0
        if self.baseline_metric and self.current_metric:
            used = self.baseline_metric["value"] - self.current_metric["value"]
        if not math.isfinite(used):
            used = 0.0
        return max(budget.max_drop - used, budget.min_ptq_drop)

    # -- the run -----------------------------------------------------------------------
    def run(self) -> Path:
        started = time.monotonic()
        self.baseline_metric = self.measure(self.teacher)
        self.current_metric = self.baseline_metric
        metric_name = self.val_frames().metric_name
        self.log(f"compress {self.kind} with {self.recipe.name!r}: baseline {metric_name} "
                 f"{self.baseline_metric['value']:.2f}")
        for index, step in enumerate(self.recipe.steps, 1):
            step_started = time.monotonic()
            before = measure_size(self.student, self.kind, self.config)
            self.log(f"[{index}/{len(self.recipe.steps)}] {step.kind} ...")
            effects = getattr(step_impl, step.kind)(self, index, step.params)
            if "metric" not in effects and effects.pop("changes_weights", True):
                effects["metric"] = self.measure()
            if effects.get("metric") is not None:
                self.current_metric = effects["metric"]
            after = measure_size(self.student, self.kind, self.config)
            record = {"index": index, "step": step.kind,
                      "params": dataclasses.asdict(step.params),
                      "seconds": round(time.monotonic() - step_started, 1),
                      "size_before": before.to_dict(), "size_after": after.to_dict(),
                      **effects}
            self.records.append(record)
            value = (effects.get("metric") or {}).get("value")
            shown = f"{metric_name} {value:.2f}" if value is not None else "accuracy unchanged"
            self.log(f"[{index}/{len(self.recipe.steps)}] {step.kind}: MACs "
                     f"{before.macs / 1e9:.3f}G -> {after.macs / 1e9:.3f}G, {shown} "
                     f"({record['seconds']} s)")
        return self._write(time.monotonic() - started)

    def _write(self, seconds: float) -> Path:
        final = self.current_metric or {}
        baseline = self.baseline_metric or {}
        drop = None
        if final.get("value") is not None and baseline.get("value") is not None:
            drop = baseline["value"] - final["value"]
        size = measure_size(self.student, self.kind, self.config)
        metrics = {"metric": self.val_frames().metric_name, "baseline": baseline,
                   "final": final, "drop": drop,
                   "within_budget": None if drop is None else drop <= self.recipe.budget.max_drop,
                   "budget": self.recipe.budget.max_drop, "measured_on": self.val_source,
                   "val_bags": [str(p) for p in (self.options.val or self.options.calib)],
                   "size": size.to_dict(), "seconds": round(seconds, 1)}
        produced_by = {"command": self.options.command, "seed": 0,
                       "data": [str(p) for p in self.options.train],
                       "calib": [str(p) for p in self.options.calib]}
        path = write_variant(self.options.out, self.recipe.name, self.kind, self.student,
                             self.config, self.deploy, self.recipe, self.options.recipe_path,
                             self.options.baseline, self.baseline_sha256, self.records,
                             metrics, produced_by)
        verdict = "within" if metrics["within_budget"] else "OVER"
        if drop is not None:
            self.log(f"variant {path}: {self.deploy.backend}/{self.deploy.precision}, "
                     f"{metrics['metric']} {final['value']:.2f} (drop {drop:.2f}, {verdict} "
                     f"budget {self.recipe.budget.max_drop})")
        return path
