"""Helpers for the evaluation tests (a module, not a test file): generated bags, made once per
session, and bag surgery that builds the cases the scorer must handle (outputs recorded next
to the sensors, renamed topics, missing topics, unknown types, truncated files)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ad_perception.data.bag_types import typestore
from ad_perception.data.datasets import GT_BOXES_TOPIC, GT_OBJECTS_TOPIC

_BAGS: dict[tuple, Path] = {}
DET2D, DET3D = "vision_msgs/msg/Detection2DArray", "vision_msgs/msg/Detection3DArray"


def shared_bag(tmp_path_factory, frames: int = 6, seed: int = 11, storage: str = "mcap",
               preset: str = "default") -> Path:
    """A generated embedded-world bag, made once per test session per parameter set."""
    key = (frames, seed, storage, preset)
    if key not in _BAGS:
        from ad_perception.sim.bag_output import generate_bag

        path = tmp_path_factory.mktemp("evalbags") / f"{preset}_{storage}_{seed}"
        generate_bag(path, frames, seed, storage, preset, progress=False)
        _BAGS[key] = path
    return _BAGS[key]


def copy_bag(source: Path, target: Path, storage: str = "mcap",
             rename: dict[str, str] | None = None, drop: Iterable[str] = (),
             extra: Iterable[tuple[str, str, int, bytes]] = (), msgdefs: dict | None = None,
             sidecar: bool = True) -> Path:
    """Rewrite ``source`` into ``target`` with topics renamed or dropped and extra raw
    messages (topic, msgtype, log time, CDR) added; msgdefs gives definitions for types the
    project typestore does not know."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    rename, drop = rename or {}, set(drop)
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    extra = list(extra)
    with Reader(source) as reader, Writer(target, version=9, storage_plugin=plugin) as writer:
        keep = [c for c in reader.connections if c.topic not in drop]
        out = {}
        for c in keep:
            out[c.id] = writer.add_connection(rename.get(c.topic, c.topic), c.msgtype,
                                              msgdef=c.msgdef.data, rihs01=c.digest)
        added = {}
        for topic, msgtype, _, _ in extra:
            if topic not in added:
                if msgdefs and msgtype in msgdefs:
                    added[topic] = writer.add_connection(topic, msgtype, msgdef=msgdefs[msgtype],
                                                         rihs01="RIHS01_" + "0" * 64)
                else:
                    added[topic] = writer.add_connection(topic, msgtype, typestore=typestore())
        # rosbags reads every connection when given none
        for connection, timestamp, data in reader.messages(connections=keep) if keep else ():
            writer.write(out[connection.id], timestamp, data)
        for topic, _, log_ns, payload in sorted(extra, key=lambda item: item[2]):
            writer.write(added[topic], log_ns, payload)
    if sidecar and (source / "ground_truth_extra.jsonl").exists():
        (target / "ground_truth_extra.jsonl").write_bytes(
            (source / "ground_truth_extra.jsonl").read_bytes())
    return target


def stamp_of(msg) -> int:
    return int(msg.header.stamp.sec) * 10**9 + int(msg.header.stamp.nanosec)


def ground_truth_as_outputs(bag: Path, latency_ms: Callable[[int], float] = lambda i: 20.0,
                            edit_2d: Callable | None = None, edit_3d: Callable | None = None,
                            keep: Callable[[int], bool] = lambda i: True,
                            stamp_offset_ns: int = 0, rate: float = 1.0,
                            first_ns: int | None = None) -> list[tuple[str, str, int, bytes]]:
    """The bag's ground truth republished as perception outputs (camera, lidar, fused), with
    header stamps moved by ``stamp_offset_ns`` and log (receive) times ``latency_ms(i)``
    after the replay-clock publish time of frame i. ``edit_*`` change a message in place,
    ``keep`` drops frames (a drop). Returns raw messages for ``copy_bag(extra=...)``."""
    store = typestore()
    messages = []
    reader_first = first_ns
    frames: list = []
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        reader_first = reader.start_time if reader_first is None else reader_first
        wanted = [c for c in reader.connections if c.topic in (GT_BOXES_TOPIC, GT_OBJECTS_TOPIC)]
        for connection, _, data in reader.messages(connections=wanted):
            frames.append((connection.topic, store.deserialize_cdr(data, connection.msgtype)))
    index = {GT_BOXES_TOPIC: 0, GT_OBJECTS_TOPIC: 0}
    for topic, msg in frames:
        i = index[topic]
        index[topic] += 1
        if not keep(i):
            continue
        stamp = stamp_of(msg)
        publish = reader_first + stamp_offset_ns + (stamp - reader_first) / rate
        log_ns = int(round(publish + latency_ms(i) * 1e6))
        shifted = stamp + stamp_offset_ns
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(shifted, 10**9)
        if topic == GT_BOXES_TOPIC:
            if edit_2d:
                edit_2d(msg, i)
            messages.append(("/perception/camera/front/detections", DET2D, log_ns,
                             bytes(store.serialize_cdr(msg, DET2D))))
        else:
            if edit_3d:
                edit_3d(msg, i)
            payload = bytes(store.serialize_cdr(msg, DET3D))
            messages.append(("/perception/lidar/detections", DET3D, log_ns, payload))
            messages.append(("/perception/objects", DET3D, log_ns, payload))
    return messages


def descending_scores(msg, _index) -> None:
    """Distinct scores (1.0 down) so AP ranking is well defined."""
    for rank, detection in enumerate(msg.detections):
        for result in detection.results:
            result.hypothesis.score = float(np.clip(1.0 - 0.01 * rank, 0.05, 1.0))
