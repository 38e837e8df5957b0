"""QoS profiles of the perception graph (DESIGN.md: sensors best-effort keep-last 1, outputs
reliable keep-last 1; both configurable through the ``qos.*`` parameters)."""

from __future__ import annotations

from collections.abc import Mapping

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT,
                "reliable": ReliabilityPolicy.RELIABLE}


def profile(reliability: str = "best_effort", depth: int = 1) -> QoSProfile:
    """Keep-last ``depth``, volatile; ``reliability`` is ``best_effort`` or ``reliable``."""
    if reliability not in _RELIABILITY:
        raise ValueError(f"reliability must be one of {list(_RELIABILITY)}, got {reliability!r}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=_RELIABILITY[reliability])


def sensor_qos(depth: int = 1) -> QoSProfile:
    return profile("best_effort", depth)


def reliable_qos(depth: int = 1) -> QoSProfile:
    return profile("reliable", depth)


def from_params(params: Mapping[str, object], direction: str) -> QoSProfile:
    """The ``qos.<direction>.*`` parameters (direction ``input`` or ``output``) as a profile."""
    return profile(str(params[f"qos.{direction}.reliability"]),
                   int(params[f"qos.{direction}.depth"]))


def tf_static_qos() -> QoSProfile:
    """What tf2 uses for /tf_static: reliable, transient local, so a late joiner still gets
    the extrinsics published once at startup."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
