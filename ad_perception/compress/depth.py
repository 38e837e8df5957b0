"""Depth pruning: remove whole residual blocks of the camera trunk.

After 50 % channel pruning the stride-4 and stride-8 stages are 16 and 32 channels wide. On
the int8 CPU path (AVX-512 VNNI) convolutions that narrow underfill the vector lanes, so
pruning further bought little (60 % of channels: 13 % faster, docs/benchmarks.md), while each
of those blocks still costs 0.3-0.4 ms of a 6 ms inference. Removing a block removes all of
its time, and a residual block's input is already a valid input for what follows it.

Which blocks: greedily, by validation accuracy with the block removed and nothing retrained
(the block whose removal costs least goes first, then the rest are re-ranked without it), so
blocks whose removal interacts are not chosen on single-removal scores. The distillation
fine-tune that follows in a recipe recovers what the removal cost.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ad_perception.models.backbone import DROPPABLE_BLOCKS, drop_block


def drop_blocks(model: nn.Module, names: Sequence[str]) -> None:
    """Replace the named blocks of ``model.trunk`` by the identity, in place."""
    for name in names:
        drop_block(model.trunk, name)


def dropped(model: nn.Module) -> list[str]:
    """The droppable blocks of ``model.trunk`` that are already identities."""
    return [name for name in DROPPABLE_BLOCKS
            if isinstance(model.trunk.get_submodule(name), nn.Identity)]


def choose_blocks(model: nn.Module, count: int, score: Callable[[nn.Module], float],
                  log: Callable[[str], Any] = print) -> tuple[list[str], list[dict[str, Any]]]:
    """``count`` blocks to drop, chosen greedily by ``score`` (higher is better) of a copy of
    ``model`` without them; returns the choice and every candidate's score per round."""
    gone = dropped(model)
    candidates = [name for name in DROPPABLE_BLOCKS if name not in gone]
    if not 0 < count <= len(candidates):
        raise ValueError(f"cannot drop {count} blocks: {len(candidates)} droppable blocks "
                         f"left ({', '.join(candidates) or 'none'})")
    chosen: list[str] = []
    rounds: list[dict[str, Any]] = []
    for round_index in range(count):
        scores = {}
        for name in candidates:
            trial = copy.deepcopy(model)
            drop_blocks(trial, [*chosen, name])
            scores[name] = float(score(trial.eval()))
        best = max(candidates, key=lambda n: (scores[n], -candidates.index(n)))
        log(f"drop_blocks: round {round_index + 1}: " + ", ".join(
            f"{n} {v:.2f}" for n, v in scores.items()) + f" -> drop {best}")
        rounds.append({"round": round_index + 1, "scores": scores, "dropped": best})
        chosen.append(best)
        candidates.remove(best)
    return chosen, rounds
