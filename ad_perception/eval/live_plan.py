"""ROS-free planning of a live replay: which launch file, which launch arguments, which
topics the player publishes and the recorder records, and where the recording goes.

The launch file is the contract (DESIGN.md topic names, ``perception.launch.py`` arguments),
but evaluation must not break when a launch file declares fewer arguments: every argument
is passed only if the file declares it, and what cannot be passed as an argument is done by
the player instead (a bag topic published under the graph's default input name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ad_perception.eval import cache
from ad_perception.eval.runner import VariantModels
from ad_perception.eval.topic_map import ROLES, ResolvedTopics, TopicMap

LAUNCH_DIR = Path(__file__).resolve().parents[2] / "launch"
# The graph alone: live evaluation plays and records itself (bag_eval.launch.py brings its
# own player, for people replaying by hand).
LAUNCH_CANDIDATES = ("perception.launch.py",)
# input role -> launch argument that names its topic
INPUT_ARGUMENTS = {"image": "image_topic", "camera_info": "camera_info_topic",
                   "points": "points_topic"}
# output role -> launch argument that names its topic
OUTPUT_ARGUMENTS = {"camera_detections": "camera_detections_topic",
                    "lidar_detections": "lidar_detections_topic", "objects": "objects_topic"}


class LivePlanError(ValueError):
    """A live evaluation that cannot be set up (no launch file, bad --launch-arg)."""


@dataclass
class LivePlan:
    launch_file: Path
    arguments: dict[str, str]
    play_topics: list[str]  # bag topics to publish
    remap: dict[str, str]  # bag topic -> published name (when the launch file cannot move)
    inputs: list[str]  # published names the graph must subscribe before replay starts
    outputs: dict[str, str]  # recorded topic -> message type
    notes: list[str] = field(default_factory=list)


def default_launch_file(launch_dir: Path = LAUNCH_DIR) -> Path:
    for name in LAUNCH_CANDIDATES:
        if (launch_dir / name).is_file():
            return launch_dir / name
    raise LivePlanError(f"no launch file for live evaluation: none of {list(LAUNCH_CANDIDATES)} "
                        f"in {launch_dir}; pass --launch FILE")


def plan_live(declared: set[str], launch_file: Path, variant: VariantModels,
              topics: ResolvedTopics, topic_map: TopicMap, clock: bool,
              user_arguments: list[str], summary_dir: Path | None = None) -> LivePlan:
    """Launch arguments and topic wiring for one variant on one bag."""
    arguments: dict[str, str] = {}
    notes: list[str] = []

    def offer(name: str, value: str) -> bool:
        if name in declared:
            arguments[name] = value
            return True
        return False

    offer("variant", variant.name)
    for name, path in (("camera_model", variant.camera), ("lidar_model", variant.lidar)):
        if path is not None and not offer(name, str(path)):
            notes.append(f"{launch_file.name} declares no {name} argument: the graph loads "
                         f"its own models for variant {variant.name}")
    if clock and not offer("use_sim_time", "true"):
        notes.append(f"{launch_file.name} declares no use_sim_time argument: /clock is "
                     "published but the nodes keep wall time")
    if summary_dir is not None:
        offer("summary_dir", str(summary_dir))
    play_topics, remap, inputs = [], {}, []
    for role, argument in INPUT_ARGUMENTS.items():
        topic = getattr(topics, role)
        if topic is None:
            continue
        play_topics.append(topic)
        default = ROLES[role][1]
        if topic != default and not offer(argument, topic):
            remap[topic] = default
        if role != "camera_info":
            inputs.append(remap.get(topic, topic))
    if topics.tf_static:
        play_topics.append(topics.tf_static)
        if topics.tf_static != "/tf_static":
            remap[topics.tf_static] = "/tf_static"
    outputs = {}
    for role, argument in OUTPUT_ARGUMENTS.items():
        msgtype, default, _ = ROLES[role]
        wanted = topic_map.topics.get(role, default)
        if wanted != default and not offer(argument, wanted):
            notes.append(f"{launch_file.name} cannot move {role} to {wanted}; recording "
                         f"{default}")
            wanted = default
        outputs[wanted] = msgtype
    substitutions = {"variant": variant.name, "camera_model": str(variant.camera or ""),
                     "lidar_model": str(variant.lidar or "")}
    for token in user_arguments:
        name, sep, value = token.partition(":=")
        if not sep or not name:
            raise LivePlanError(f"--launch-arg takes NAME:=VALUE, got {token!r}")
        try:
            arguments[name] = value.format(**substitutions)
        except (KeyError, IndexError, ValueError) as err:
            raise LivePlanError(f"--launch-arg {token!r}: unknown placeholder {err}; "
                                f"available: {sorted(substitutions)}") from None
    return LivePlan(launch_file, arguments, play_topics, remap, inputs, outputs, notes)


def recording_folder(recordings_dir: Path, variant: VariantModels, bag: Path,
                     launch_file: Path, rate: float, clock: bool, topic_map: TopicMap,
                     user_arguments: list[str]) -> Path:
    """One folder per (variant, bag, replay settings): a finished recording is reused."""
    key = cache.fingerprint(bag, variant.camera or "-", variant.lidar or "-", launch_file,
                            rate, clock, repr(topic_map), user_arguments)
    return Path(recordings_dir) / variant.name / f"{bag.name}-{key}"
