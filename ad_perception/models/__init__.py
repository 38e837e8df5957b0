"""Detector definitions built to be compressed: the camera FCOS core, the lidar
PointPillars/CenterPoint core, their pre/post-processing and losses, and checkpoint IO.

Submodules are imported directly (``from ad_perception.models.camera_detector import ...``)
so that importing one detector does not pull in the other.
"""
