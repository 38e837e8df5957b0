from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ad_perception.eval.replay import (
    ReplayError,
    bag_topics,
    header_is_first_field,
    open_bag,
    read_stamp_ns,
    schedule,
    shift_stamp,
)

STORE = get_typestore(Stores.ROS2_KILTED)
Image = STORE.types["sensor_msgs/msg/Image"]
Header = STORE.types["std_msgs/msg/Header"]
Time = STORE.types["builtin_interfaces/msg/Time"]
String = STORE.types["std_msgs/msg/String"]
T0 = 1_700_000_000 * 10**9


def _image(stamp_ns: int, value: int):
    sec, nanosec = divmod(stamp_ns, 10**9)
    data = np.full(4 * 3 * 3, value, dtype=np.uint8)
    return Image(Header(Time(sec, nanosec), "cam"), 4, 3, "rgb8", 0, 9, data)


def _write_bag(path, storage=StoragePlugin.MCAP):
    with Writer(path, version=9, storage_plugin=storage) as writer:
        images = writer.add_connection("/cam", Image.__msgtype__, typestore=STORE)
        notes = writer.add_connection("/note", String.__msgtype__, typestore=STORE)
        for i in range(5):
            stamp = T0 + i * 100_000_000
            writer.write(images, stamp, STORE.serialize_cdr(_image(stamp, i), Image.__msgtype__))
            note = STORE.serialize_cdr(String(f"n{i}"), String.__msgtype__)
            writer.write(notes, stamp + 1, note)


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_schedule_orders_and_scales(tmp_path, storage):
    _write_bag(tmp_path / "bag", storage)
    reader = open_bag(tmp_path / "bag")
    topics = {t.name: t for t in bag_topics(reader)}
    assert topics["/cam"].header_first and not topics["/note"].header_first
    assert topics["/cam"].count == 5
    items = list(schedule(reader, topics=["/cam"], rate=2.0))
    assert [round(i.due_s, 6) for i in items] == [0.0, 0.05, 0.1, 0.15, 0.2]
    assert [read_stamp_ns(i.raw) for i in items] == [T0 + i * 100_000_000 for i in range(5)]
    reader.close()


def test_restamp_moves_only_the_header_and_keeps_payload(tmp_path):
    _write_bag(tmp_path / "bag")
    reader = open_bag(tmp_path / "bag")
    offset = 123_456_789_012
    items = list(schedule(reader, stamp_offset_ns=offset))
    reader.close()
    cams = [i for i in items if i.topic == "/cam"]
    for index, item in enumerate(cams):
        message = STORE.deserialize_cdr(item.raw, Image.__msgtype__)
        stamp = message.header.stamp.sec * 10**9 + message.header.stamp.nanosec
        assert stamp == T0 + index * 100_000_000 + offset
        assert message.header.frame_id == "cam" and (message.data == index).all()
    notes = [STORE.deserialize_cdr(i.raw, String.__msgtype__).data for i in items
             if i.topic == "/note"]
    assert notes == [f"n{i}" for i in range(5)]


def test_shift_stamp_rejects_non_cdr_and_negative():
    with pytest.raises(ReplayError):
        shift_stamp(b"\x07\x07\x00\x00" + bytes(20), 1)
    raw = STORE.serialize_cdr(_image(10, 0), Image.__msgtype__)
    with pytest.raises(ReplayError):
        shift_stamp(raw, -11)


def test_header_detection_reads_definitions():
    assert header_is_first_field("x/msg/Y", "# comment\nstd_msgs/Header header\nint32 a\n")
    assert not header_is_first_field("x/msg/Y", "int32 CONST=3\nint32 a\nstd_msgs/Header h\n")
    assert header_is_first_field("sensor_msgs/msg/PointCloud2", None)
    assert not header_is_first_field("tf2_msgs/msg/TFMessage", None)


def test_bad_bags_give_replay_errors(tmp_path):
    with pytest.raises(ReplayError, match="not found"):
        open_bag(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.yaml").write_text("not: [a bag")
    with pytest.raises(ReplayError, match="cannot open"):
        open_bag(tmp_path / "junk")
    _write_bag(tmp_path / "bag")
    reader = open_bag(tmp_path / "bag")
    with pytest.raises(ReplayError, match="none of the topics"):
        list(schedule(reader, topics=["/absent"]))
    with pytest.raises(ValueError):
        list(schedule(reader, rate=0))
