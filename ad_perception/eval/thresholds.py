"""``--fail-under KEY=VALUE`` / ``--fail-over KEY=VALUE``: results as a CI exit code.

KEY is a dotted path into results.json's ``variants`` object, starting with the variant name
(or ``*`` for every variant): ``baseline.camera.map50=0.8``, ``int8.fused.bev_ap.car=0.6``,
``*.latency_ms.p99=150`` with --fail-over. A value that was not scored (null) fails: a
threshold nobody can check must not pass silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Threshold:
    path: tuple[str, ...]
    value: float
    fail_when: str  # "under" or "over"

    @property
    def text(self) -> str:
        return f"{'.'.join(self.path)}={self.value:g}"


def parse_threshold(text: str, fail_when: str = "under") -> Threshold:
    """``variant.key.sub=number``; ValueError saying what the argument should look like."""
    key, sep, value = text.partition("=")
    parts = tuple(p for p in key.strip().split(".") if p)
    if not sep or len(parts) < 2:
        raise ValueError(f"--fail-{fail_when} {text!r}: expected VARIANT.KEY[.SUB]=NUMBER, "
                         "e.g. baseline.camera.map50=0.8")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--fail-{fail_when} {text!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"--fail-{fail_when} {text!r}: the threshold must be finite")
    return Threshold(parts, number, fail_when)


def check_variant_names(thresholds: list[Threshold], variants: list[str]) -> None:
    """Fail before any work when a threshold names a variant that is not being evaluated."""
    for threshold in thresholds:
        if threshold.path[0] != "*" and threshold.path[0] not in variants:
            raise ValueError(f"--fail-{threshold.fail_when} {threshold.text}: variant "
                             f"{threshold.path[0]!r} is not among --variants {variants}")


def _lookup(entry: Any, keys: tuple[str, ...]) -> tuple[Any, str | None]:
    node = entry
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            where = ".".join(keys[:depth]) or "(top)"
            options = sorted(node) if isinstance(node, dict) else []
            return None, f"no key {key!r} under {where}; available: {options}"
        node = node[key]
    return node, None


def check(results: dict[str, Any], thresholds: list[Threshold]) -> list[str]:
    """Messages for every threshold that failed (empty: all passed)."""
    failures: list[str] = []
    variants = results.get("variants", {})
    for threshold in thresholds:
        names = sorted(variants) if threshold.path[0] == "*" else [threshold.path[0]]
        for name in names:
            label = f"{name}.{'.'.join(threshold.path[1:])}"
            if name not in variants:
                failures.append(f"{label}: variant {name} has no results")
                continue
            value, problem = _lookup(variants[name], threshold.path[1:])
            if problem:
                failures.append(f"{label}: {problem}")
            elif value is None:
                failures.append(f"{label}: not scored (null), required "
                                f"{'>=' if threshold.fail_when == 'under' else '<='} "
                                f"{threshold.value:g}")
            elif not isinstance(value, int | float) or isinstance(value, bool):
                failures.append(f"{label}: is {type(value).__name__}, not a number")
            elif threshold.fail_when == "under" and value < threshold.value:
                failures.append(f"{label} = {value:.4g} < {threshold.value:g}")
            elif threshold.fail_when == "over" and value > threshold.value:
                failures.append(f"{label} = {value:.4g} > {threshold.value:g}")
    return failures
