"""camera_detector: Image (+ CameraInfo) -> vision_msgs/Detection2DArray, newest frame only.

Topics (relative, remap them): ``image`` and ``camera_info`` in, ``detections`` out, plus
``~/debug/image`` (boxes drawn, only while ``publish_debug_image`` is true and someone
subscribes) and the debug/diagnostics topics every node has. CameraInfo is not needed to
detect; the node only checks that the images have the calibrated size and says so when not.
"""

from __future__ import annotations

from typing import Any

from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray

from ad_perception.core import cdr
from ad_perception.core.annotate import draw_detections
from ad_perception.core.node_params import NODE_PARAMS
from ad_perception.ros import conversions, qos
from ad_perception.ros.detector_node import DetectorNode, PipelineFactory
from ad_perception.ros.node_base import run_node


class CameraDetectorNode(DetectorNode):
    KIND = "camera"
    INPUT_TOPIC = "image"

    def __init__(self, pipeline_factory: PipelineFactory | None = None, **kwargs: Any) -> None:
        super().__init__("camera_detector", NODE_PARAMS["camera_detector"], Image,
                         Detection2DArray, pipeline_factory, **kwargs)
        self._calibrated_size: tuple[int, int] | None = None
        self.health.set_missing("camera_info", True)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                 qos.from_params(self.params, "input"))
        self._debug_image = self.create_publisher(Image, "~/debug/image",
                                                  qos.sensor_qos(1))
        self._last_image: Any = None

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._calibrated_size = (int(msg.width), int(msg.height))
        self.health.set_missing("camera_info", False)

    def parse(self, raw: bytes) -> cdr.RawImage:
        return cdr.read_image(raw)

    def decode(self, msg: cdr.RawImage) -> Any:
        image = conversions.image_to_array(msg, "rgb8")
        size = (int(msg.width), int(msg.height))
        if self._calibrated_size is not None and size != self._calibrated_size:
            self.warn_throttled("size", f"image {size} differs from CameraInfo "
                                f"{self._calibrated_size}: check the camera_info remapping")
        self._last_image = image
        return image

    def pack(self, result: Any, msg: cdr.RawImage) -> bytes:
        return cdr.encode_detections_2d(result, conversions.header_stamp(msg.header))

    def after_publish(self, result: Any, msg: cdr.RawImage) -> None:
        if not self.params["publish_debug_image"] or \
                self._debug_image.get_subscription_count() == 0:
            return
        annotated = draw_detections(self._last_image, result)
        self._debug_image.publish(conversions.array_to_image(annotated, "rgb8", msg.header))


def main(args: list[str] | None = None) -> int:
    return run_node(CameraDetectorNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
