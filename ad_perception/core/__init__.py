"""ROS-free core: dataclasses, geometry, camera model, pipelines. Never imports rclpy."""
