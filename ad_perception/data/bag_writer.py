"""A rosbag2 writer over `rosbags` with the project's typestore, QoS and sidecar conventions,
shared by the simulator and the dataset importers."""

from __future__ import annotations

import json
from pathlib import Path

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer

from ad_perception.data.bag_types import typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_ZERO = QosTime(sec=0, nsec=0)


def _qos(durability: QosDurability) -> Qos:
    return Qos(
        QosHistory.KEEP_LAST,
        1,
        QosReliability.RELIABLE,
        durability,
        _ZERO,
        _ZERO,
        QosLiveliness.AUTOMATIC,
        _ZERO,
        False,
    )


# /tf_static is latched in ROS 2: a late subscriber during replay must still get it.
TRANSIENT_LOCAL = _qos(QosDurability.TRANSIENT_LOCAL)
VOLATILE = _qos(QosDurability.VOLATILE)


class BagWriter:
    """Context manager: ``write(topic, msgtype, stamp_ns, msg)`` adds connections on first use
    and serialises with the shared typestore; ``sidecar_lines`` go to a JSONL file beside."""

    def __init__(self, path: Path | str, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; rosbag2 writes a new folder")
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._connections: dict[str, object] = {}
        self._store = typestore()

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def write(self, topic: str, msgtype: str, stamp_ns: int, msg) -> None:
        self.write_raw(topic, msgtype, stamp_ns, self._store.serialize_cdr(msg, msgtype))

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, payload) -> None:
        connection = self._connections.get(topic)
        if connection is None:
            qos = TRANSIENT_LOCAL if topic == "/tf_static" else VOLATILE
            connection = self._writer.add_connection(
                topic, msgtype, typestore=self._store, offered_qos_profiles=[qos]
            )
            self._connections[topic] = connection
        self._writer.write(connection, int(stamp_ns), payload)


def write_sidecar(bag_path: Path | str, name: str, records: list[dict]) -> Path:
    """JSON lines beside the bag's storage files (rosbag2 readers ignore extra files)."""
    path = Path(bag_path) / name
    with path.open("w") as stream:
        for record in records:
            stream.write(json.dumps(record, sort_keys=True) + "\n")
    return path
