"""lidar_detector: PointCloud2 -> vision_msgs/Detection3DArray in the cloud's frame.

Topics (relative, remap them): ``points`` in, ``detections`` out, plus the debug and
diagnostics topics every node has. Any field layout with float x, y, z works (intensity is
optional, ring ignored); non-finite points are dropped before pillarisation.
"""

from __future__ import annotations

from typing import Any

from sensor_msgs.msg import PointCloud2
from vision_msgs.msg import Detection3DArray

from ad_perception.core import cdr
from ad_perception.core.node_params import NODE_PARAMS
from ad_perception.ros import conversions
from ad_perception.ros.detector_node import DetectorNode, PipelineFactory
from ad_perception.ros.node_base import run_node


class LidarDetectorNode(DetectorNode):
    KIND = "lidar"
    INPUT_TOPIC = "points"

    def __init__(self, pipeline_factory: PipelineFactory | None = None, **kwargs: Any) -> None:
        super().__init__("lidar_detector", NODE_PARAMS["lidar_detector"], PointCloud2,
                         Detection3DArray, pipeline_factory, **kwargs)

    def parse(self, raw: bytes) -> cdr.RawPointCloud2:
        return cdr.read_pointcloud2(raw)

    def decode(self, msg: cdr.RawPointCloud2) -> Any:
        # the pillar encoder's range test drops non-finite points; ring is not a feature
        return conversions.pointcloud_to_core(msg, keep_non_finite=True, with_ring=False)

    def pack(self, result: Any, msg: cdr.RawPointCloud2) -> bytes:
        return cdr.encode_boxes_3d(result, conversions.header_stamp(msg.header))


def main(args: list[str] | None = None) -> int:
    return run_node(LidarDetectorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
