"""Latency tracking and diagnostics status logic for the nodes, ROS-free so it is unit-tested
without a graph (``ad_perception/ros`` turns these results into messages)."""
