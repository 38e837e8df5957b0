"""ad_perception: compressed camera/lidar perception for ROS 2, with its compression toolkit
and rosbag replay evaluation."""

__version__ = "0.1.0"

CLASSES: tuple[str, ...] = ("car", "truck", "pedestrian", "cyclist")
# Camera trunk stems (see models/backbone.py); here so recipes validate without torch.
CAMERA_STEMS: tuple[str, ...] = ("conv7_maxpool", "patch4")
