"""ad_perception: compressed camera/lidar perception for ROS 2, with its compression toolkit
and rosbag replay evaluation."""

__version__ = "0.1.0"

CLASSES: tuple[str, ...] = ("car", "truck", "pedestrian", "cyclist")
# Camera trunk stems (see models/backbone.py); here so recipes validate without torch.
CAMERA_STEMS: tuple[str, ...] = ("conv7_maxpool", "conv5_maxpool", "patch4")
# Trunk blocks a compression step may remove (the second block of each ResNet-18 stage keeps
# its stage's channels and resolution); here so recipes validate without torch.
CAMERA_DROPPABLE_BLOCKS: tuple[str, ...] = ("layer1.1", "layer2.1", "layer3.1", "layer4.1")
