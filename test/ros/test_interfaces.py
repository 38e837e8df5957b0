"""The message types we publish must hash exactly like upstream's, or a ROS 2 subscriber on
a real distro will not match our publishers (RIHS01 hashes, reference values in FACTS.md)."""

from __future__ import annotations

import importlib

REFERENCE_HASHES = {
    "vision_msgs/msg/Detection2DArray":
        "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "vision_msgs/msg/Detection3DArray":
        "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    "vision_msgs/msg/Detection2D":
        "RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "vision_msgs/msg/Detection3D":
        "RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "vision_msgs/msg/LabelInfo":
        "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "vision_msgs/msg/VisionInfo":
        "RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284",
    "vision_msgs/msg/BoundingBox3DArray":
        "RIHS01_a81938db9576b10c2eecd7c5a5da3eac496efd00221b25ed051dfbc81fb56da6",
    "vision_msgs/msg/Classification":
        "RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143",
    "tf2_msgs/msg/TFMessage":
        "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
    "visualization_msgs/msg/MarkerArray":
        "RIHS01_86cb8800b6fb05b5eff1abd7a56f62a5641d3ae9a1c29e78e67e704f1d067dcf",
    "diagnostic_msgs/msg/DiagnosticArray":
        "RIHS01_5a8a36efb05fb25070fa0fb3810290c0e6cd4862b54a8fb975a1ee8dc55a333e",
    "sensor_msgs/msg/Image":
        "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
}


def _message_class(type_name: str):
    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def test_vision_msgs_importable():
    from vision_msgs.msg import Detection3DArray  # noqa: F401 - the import is the test


def test_live_publisher_type_hashes_match_upstream(ros_context, spin_until):
    import rclpy

    node = rclpy.create_node("hash_probe", context=ros_context)
    try:
        topics = {}
        for index, type_name in enumerate(REFERENCE_HASHES):
            topic = f"/hash_probe/t{index}"
            node.create_publisher(_message_class(type_name), topic, 1)
            topics[topic] = type_name

        def all_visible() -> bool:
            return all(node.get_publishers_info_by_topic(t) for t in topics)

        assert spin_until([node], all_visible, timeout=10.0)
        reported = {}
        for topic, type_name in topics.items():
            (info,) = node.get_publishers_info_by_topic(topic)
            assert info.topic_type == type_name
            reported[type_name] = str(info.topic_type_hash)
        mismatched = {t: h for t, h in reported.items() if h != REFERENCE_HASHES[t]}
        assert not mismatched, f"type hashes differ from upstream: {mismatched}"
    finally:
        node.destroy_node()
