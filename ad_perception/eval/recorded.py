"""Outputs recorded on topics (a live replay's mcap, or a vehicle bag that carries the
perception outputs next to the sensors) -> ``Outputs`` for the one scorer.

Outputs copy the sensor header unchanged (DESIGN.md), so each is keyed back to its input by
header stamp. A live replay moves every stamp by one constant offset so that stamps read as
wall time (``ReplayInfo``); subtracting it maps outputs onto the bag's ground truth exactly.

Latency is the receive time (the recording's log time) minus the time the input was put on
the wire, i.e. its stamp mapped to the replay's wall clock: ``first + offset + (stamp -
first) / rate``. At rate 1 this is exactly "receive time minus header stamp" (Autoware's
pipeline latency); at rate R it stays the delay the pipeline added. A recording made on a
vehicle (offset 0, rate 1) measures receive time minus sensor stamp, as recorded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ad_perception.eval import decode
from ad_perception.eval.errors import EvalError, read_messages, topic_types
from ad_perception.eval.ground_truth import BagGroundTruth
from ad_perception.eval.scoring import Outputs
from ad_perception.eval.topic_map import TopicMap, TopicMapError

REPLAY_INFO_NAME = "replay.json"
HEADLINE_ORDER = ("fused", "lidar", "camera")  # the end-to-end output first
ROLE_TO_OUTPUT = {"camera_detections": "camera", "lidar_detections": "lidar", "objects": "fused"}


@dataclass(frozen=True)
class ReplayInfo:
    """How a live replay published the bag (written beside the recording)."""

    stamp_offset_ns: int = 0
    rate: float = 1.0
    first_ns: int = 0  # log time of the bag's first message, where replay time starts

    def publish_wall_ns(self, stamp_ns: int) -> float:
        return self.first_ns + self.stamp_offset_ns + (stamp_ns - self.first_ns) / self.rate

    def save(self, folder: Path) -> Path:
        path = Path(folder) / REPLAY_INFO_NAME
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, folder: Path) -> ReplayInfo | None:
        path = Path(folder) / REPLAY_INFO_NAME
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(int(data["stamp_offset_ns"]), float(data["rate"]), int(data["first_ns"]))


def outputs_from_recording(recording: str | Path, truth: BagGroundTruth,
                           replay: ReplayInfo | None = None,
                           topic_map: TopicMap | None = None) -> Outputs:
    """Read the output topics of ``recording`` and key them by their input frame's stamp."""
    recording = Path(recording)
    replay = replay or ReplayInfo.load(recording) or ReplayInfo(first_ns=truth.start_ns)
    topic_map = topic_map or truth.topic_map
    try:
        resolved = topic_map.resolve(topic_types(recording), str(recording))
    except TopicMapError as err:
        raise EvalError(str(err)) from err
    topics = {getattr(resolved, role): output for role, output in ROLE_TO_OUTPUT.items()
              if getattr(resolved, role)}
    outputs = Outputs(latency_kind="end_to_end")
    if not topics:
        outputs.notes.append(f"{recording}: no recorded output topic (expected "
                             f"{', '.join(sorted(ROLE_TO_OUTPUT))} roles, e.g. "
                             "/perception/objects)")
        return outputs
    inputs = {"camera": {f.stamp_ns for f in truth.image_frames},
              "lidar": {f.stamp_ns for f in truth.cloud_frames}}
    inputs["fused"] = inputs["lidar"]
    for output in topics.values():
        setattr(outputs, output, {})
        outputs.latency_by_output[output] = []
    strays: dict[str, int] = {}
    repeats: dict[str, int] = {}
    for topic, log_ns, msg in read_messages(recording, topics):
        output = topics[topic]
        stamp = decode.stamp_ns(msg) - replay.stamp_offset_ns
        if stamp not in inputs[output]:
            strays[output] = strays.get(output, 0) + 1
            continue
        produced = getattr(outputs, output)
        if stamp in produced:
            repeats[output] = repeats.get(output, 0) + 1
            continue
        produced[stamp] = (decode.detections_2d(msg, topic_map) if output == "camera"
                           else decode.boxes_3d(msg, topic_map))
        outputs.latency_by_output[output].append(
            (log_ns - replay.publish_wall_ns(stamp)) / 1e6)
    for output, count in sorted(strays.items()):
        outputs.notes.append(f"{count} {output} output(s) carry a stamp of no input frame "
                             "(headers must be copied unchanged from the sensor message)")
    for output, count in sorted(repeats.items()):
        outputs.notes.append(f"{count} {output} output(s) repeat an input stamp; the first "
                             "was scored")
    headline = next((o for o in HEADLINE_ORDER if outputs.latency_by_output.get(o)), None)
    if headline is not None:
        outputs.latency_ms = list(outputs.latency_by_output[headline])
        outputs.latency_kind = f"end_to_end ({headline} output)"
    return outputs
