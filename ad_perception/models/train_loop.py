"""The training loop shared by the camera and lidar detectors, their fine-tunes and their
distillation: epochs with progress, validation AP after each, checkpoints and resume.

A task adapter supplies what differs per model (batches, forward, loss, validation). The loop
owns what must be identical everywhere: optimiser and schedule, gradient clipping, the
resumable state file, the best-model checkpoint with its card, and the distillation hook
through which the compression toolkit adds a teacher's loss to every fine-tune.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm import tqdm

from ad_perception.models.checkpoint import save_checkpoint

STATE_FILE = "train_state.pt"
HISTORY_FILE = "history.json"
BEST_FILE = "best.pt"

# A distillation hook: (student outputs, batch, student inputs) -> named extra losses.
DistillationHook = Callable[[Any, dict, Any], dict[str, torch.Tensor]]


class TaskAdapter(Protocol):
    """What the loop needs from a model family (camera or lidar)."""

    model: nn.Module
    model_config: Any
    selection_metric: str  # key of validate()'s dict used to pick the best epoch

    def train_batches(self, epoch: int) -> Iterable[dict]: ...

    def inputs(self, batch: dict) -> Any: ...

    def forward(self, inputs: Any) -> Any: ...

    def loss(self, outputs: Any, batch: dict) -> dict[str, torch.Tensor]: ...

    def validate(self) -> dict[str, Any]: ...

    def batches_per_epoch(self) -> int: ...


@dataclass
class TrainConfig:
    epochs: int = 20
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    grad_clip_norm: float = 10.0
    seed: int = 0
    validate_every: int = 1
    threads: int = 0  # 0: leave torch's default
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    best_epoch: int
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    checkpoint: Path


def _schedule(step: int, total: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 5% (a factor on the base learning rate)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def train(
    task: TaskAdapter,
    config: TrainConfig,
    out_dir: str | Path,
    produced_by: dict[str, Any],
    resume: bool = True,
    distillation: DistillationHook | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``task.model`` for ``config.epochs``, resuming from ``out_dir`` when a state file
    is there. The best epoch by ``task.selection_metric`` is saved as ``best.pt`` + card."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = task.model
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 or name.endswith(".bias") else decay).append(
                parameter
            )
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    steps_per_epoch = max(1, task.batches_per_epoch())
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_fraction * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _schedule(step, total_steps, warmup)
    )

    start_epoch, history, best = 0, [], {"epoch": -1, "score": -math.inf, "metrics": {}}
    state_path = out_dir / STATE_FILE
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        history = json.loads((out_dir / HISTORY_FILE).read_text())
        best = json.loads(state["best"])
        if start_epoch >= config.epochs:
            print(f"{out_dir}: all {config.epochs} epochs already trained (--no-resume retrains)")
        else:
            print(f"resuming {out_dir} at epoch {start_epoch + 1}/{config.epochs}")

    for epoch in range(start_epoch, config.epochs):
        model.train()
        sums: dict[str, float] = {}
        count, started = 0, time.monotonic()
        batches = task.train_batches(epoch)
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not progress, leave=False)
        for batch in bar:
            inputs = task.inputs(batch)
            outputs = task.forward(inputs)
            losses = task.loss(outputs, batch)
            if distillation is not None:
                extra = distillation(outputs, batch, inputs)
                losses = {**losses, **extra, "total": losses["total"] + sum(extra.values())}
            if not torch.isfinite(losses["total"]):
                raise FloatingPointError(f"non-finite loss at epoch {epoch + 1}: "
                                         f"{ {k: float(v) for k, v in losses.items()} }")
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
            optimizer.step()
            scheduler.step()
            count += 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            bar.set_postfix(loss=f"{sums['total'] / count:.3f}")
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "seconds": round(time.monotonic() - started, 1),
            "loss": {k: v / max(1, count) for k, v in sums.items()},
            "lr": scheduler.get_last_lr()[0],
        }
        last = epoch + 1 == config.epochs
        if (epoch + 1) % config.validate_every == 0 or last:
            model.eval()
            metrics = task.validate()
            record["val"] = metrics
            score = float(metrics.get(task.selection_metric, float("nan")))
            if math.isfinite(score) and score > best["score"]:
                best = {"epoch": epoch + 1, "score": score, "metrics": metrics}
                save_checkpoint(model, out_dir / BEST_FILE, task.model_config,
                                produced_by={**produced_by, "epoch": epoch + 1},
                                metrics={"validation": metrics})
        history.append(record)
        summary = f"epoch {epoch + 1}: loss {record['loss'].get('total', float('nan')):.4f}"
        if "val" in record:
            summary += f", {task.selection_metric} {record['val'].get(task.selection_metric)}"
        print(summary, flush=True)
        (out_dir / HISTORY_FILE).write_text(json.dumps(history, indent=2))
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "epoch": epoch,
             "best": json.dumps(best), "train_config": json.dumps(asdict(config))},
            state_path,
        )
    if best["epoch"] < 0:  # never validated with a finite score: keep the last weights
        save_checkpoint(model, out_dir / BEST_FILE, task.model_config,
                        produced_by={**produced_by, "epoch": config.epochs}, metrics={})
    return TrainResult(best["epoch"], best["metrics"], history, out_dir / BEST_FILE)
