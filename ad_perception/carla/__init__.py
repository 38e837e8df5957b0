"""carla."""
