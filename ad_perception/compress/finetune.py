"""Recovery fine-tuning of a compressed student with distillation from the uncompressed
teacher, through the one training loop (``models/train_loop.py``): progress bars, validation
each epoch, ``train_state.pt`` for resume, ``best.pt`` with its card.

The student is updated in place (the best epoch's weights are copied back into the same
module objects), because an iterative pruner keeps references to them between steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ad_perception.compress.distill import Distiller


def finetune(student: nn.Module, config: Any, teacher: nn.Module, data: Any, params: Any,
             distillation: Any, out_dir: Path, produced_by: dict[str, Any], threads: int = 0,
             progress: bool = True, load_best: bool = True) -> dict[str, Any]:
    """Train ``student`` for ``params.epochs`` (resuming from ``out_dir``); returns the best
    epoch's validation metrics (or the last epoch's when ``load_best`` is False)."""
    from ad_perception.models.train_loop import TrainConfig, train

    if params.epochs <= 0:
        return {"skipped": "epochs = 0"}
    task = data.task(student, config, params.batch_size, params.max_frames, params.seed)
    distiller = Distiller(teacher, student, data.kind, task, distillation.response_weight,
                          distillation.feature_weight, distillation.temperature)
    try:
        result = train(task, TrainConfig(epochs=params.epochs, learning_rate=params.lr,
                                         seed=params.seed, threads=threads),
                       out_dir, produced_by, resume=True, distillation=distiller,
                       progress=progress)
    finally:
        distiller.close()
    if load_best and result.best_epoch > 0:
        state = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
        student.load_state_dict(state, strict=True)
    student.eval()
    history = [{"epoch": r["epoch"], "loss": r["loss"].get("total"),
                "val": r.get("val", {}).get(task.selection_metric)} for r in result.history]
    return {"best_epoch": result.best_epoch, "epochs": params.epochs,
            "frames": len(task.train_samples), "history": history,
            "best_validation": result.best_metrics}
