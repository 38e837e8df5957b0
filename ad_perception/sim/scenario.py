"""A drive through the world: the ego trajectory, who else is on the road and how they move,
and the lighting of the scene.

Vehicles in one lane share that lane's speed, so the gaps drawn at spawn time hold for the
whole drive and nobody drives through anybody else without a collision model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ad_perception.sim.actors import Actor, make_actor
from ad_perception.sim.world import (
    BIKE_OFFSET,
    CURB_HEIGHT,
    LANE_OFFSETS,
    PARKING_OFFSET,
    ROAD_HALF_WIDTH,
    SIDE_ROAD_Z,
    SIDEWALK_WIDTH,
    World,
    build_world,
)

FRAME_PERIOD_S = 0.1
EGO_START_S = 40.0
VISIBLE_RANGE_M = 130.0


@dataclass
class Motion:
    """Either a path-following motion (station, lateral offset, signed speed along the road)
    or a fixed pose (``fixed_pose`` = x, y, z, yaw)."""

    station: float = 0.0
    lateral: float = 0.0
    speed: float = 0.0  # m/s along +station; negative drives against the station direction
    z: float = 0.0
    fixed_pose: tuple[float, float, float, float] | None = None


@dataclass
class Lighting:
    sun_direction: np.ndarray  # unit vector towards the sun, world frame
    sun_color: np.ndarray
    ambient: np.ndarray
    sky_color: np.ndarray
    exposure: float
    haze: float  # fraction of sky colour mixed in per 100 m


@dataclass
class Scenario:
    seed: int
    world: World
    ego_lane: float
    ego_speed: float
    actors: list[Actor] = field(default_factory=list)
    motions: list[Motion] = field(default_factory=list)
    lighting: Lighting | None = None

    def ego_pose(self, t: float) -> tuple[np.ndarray, float]:
        """base_link position (x, y, 0) and yaw at time ``t`` seconds after the first frame."""
        centre, _, normal, heading = self.world.path.frame_at(EGO_START_S + self.ego_speed * t)
        xy = centre + normal * self.ego_lane
        return np.array([xy[0], xy[1], 0.0]), float(heading)

    def actor_poses(self, t: float) -> np.ndarray:
        """(N, 4) x, y, z, yaw of every actor at time ``t``."""
        poses = np.zeros((len(self.motions), 4))
        moving = [i for i, m in enumerate(self.motions) if m.fixed_pose is None]
        for i, m in enumerate(self.motions):
            if m.fixed_pose is not None:
                poses[i] = m.fixed_pose
        if moving:
            station = np.array(
                [self.motions[i].station + self.motions[i].speed * t for i in moving]
            )
            lateral = np.array([self.motions[i].lateral for i in moving])
            centre, _, normal, heading = self.world.path.frame_at(station)
            xy = centre + normal * lateral[:, None]
            backwards = np.array([self.motions[i].speed < 0 for i in moving])
            yaw = heading + np.where(backwards, np.pi, 0.0)
            z = np.array([self.motions[i].z for i in moving])
            poses[moving] = np.column_stack([xy, z, yaw])
        return poses


def _spaced_stations(rng, start: float, stop: float, gap_lo: float, gap_hi: float) -> list[float]:
    stations, s = [], start + rng.uniform(0, gap_hi)
    while s < stop:
        stations.append(float(s))
        s += rng.uniform(gap_lo, gap_hi)
    return stations


def _lighting(rng: np.random.Generator) -> Lighting:
    elevation, azimuth = np.radians(rng.uniform(12, 70)), rng.uniform(-np.pi, np.pi)
    sun = np.array(
        [
            np.cos(elevation) * np.cos(azimuth),
            np.cos(elevation) * np.sin(azimuth),
            np.sin(elevation),
        ]
    )
    warmth = 1.0 - np.sin(elevation)  # low sun is warmer
    overcast = rng.random() < 0.25
    sun_strength = rng.uniform(0.25, 0.45) if overcast else rng.uniform(0.75, 1.1)
    sun_color = sun_strength * np.array([1.0, 0.95 - 0.12 * warmth, 0.88 - 0.25 * warmth])
    tint = np.array([0.9, 0.95, 1.05]) if not overcast else np.full(3, 1.5)
    ambient = rng.uniform(0.3, 0.45) * tint
    sky = np.array([0.62, 0.66, 0.70]) if overcast else np.array([0.48, 0.64, 0.88])
    return Lighting(
        sun,
        sun_color,
        ambient,
        np.clip(sky * rng.uniform(0.9, 1.1), 0, 1),
        float(rng.uniform(0.8, 1.2)),
        float(rng.uniform(0.03, 0.12)),
    )


def build_scenario(seed: int, frames: int) -> Scenario:
    """Everything about one drive, drawn from one seeded generator."""
    rng = np.random.default_rng(seed)
    ego_speed = float(rng.uniform(8.0, 15.0))
    duration = frames * FRAME_PERIOD_S
    length = EGO_START_S + ego_speed * duration + 160.0
    world = build_world(rng, length)
    ego_lane = -LANE_OFFSETS[int(rng.integers(2))]
    scenario = Scenario(seed, world, ego_lane, ego_speed, lighting=_lighting(rng))
    ego_end = EGO_START_S + ego_speed * duration

    def add(class_id: str, motion: Motion) -> None:
        track_id = len(scenario.actors) + 1
        scenario.actors.append(make_actor(class_id, track_id, rng))
        scenario.motions.append(motion)

    def vehicle_class() -> str:
        return "truck" if rng.random() < 0.15 else "car"

    junction = world.near_intersection
    for direction in (1, -1):
        for lane in LANE_OFFSETS:
            lateral = -direction * lane
            if lateral == ego_lane:
                speed = ego_speed
            elif direction > 0:
                speed = ego_speed * rng.uniform(0.75, 1.25)
            else:
                speed = -rng.uniform(8.0, 14.0)
            span = abs(speed) * duration
            lo, hi = (0.0, length) if direction > 0 else (0.0, length + span)
            for s in _spaced_stations(rng, lo, hi, 14.0, 45.0):
                if lateral == ego_lane and abs(s - EGO_START_S) < 12.0:
                    continue
                add(vehicle_class(), Motion(s, lateral, speed))
        bike_speed = direction * rng.uniform(3.5, 7.0)
        for s in _spaced_stations(rng, 0.0, length, 20.0, 90.0):
            add("cyclist", Motion(s, -direction * BIKE_OFFSET, bike_speed))
        for s in _spaced_stations(rng, 0.0, length, 6.0, 30.0):
            if not junction(np.array([s]), 14.0).any():
                heading = 0.0 if direction > 0 else np.pi
                centre, _, normal, road_heading = world.path.frame_at(s)
                xy = centre + normal * (-direction * PARKING_OFFSET)
                add(
                    vehicle_class() if rng.random() < 0.5 else "car",
                    Motion(fixed_pose=(xy[0], xy[1], 0.0, float(road_heading + heading))),
                )
        for s in _spaced_stations(rng, 0.0, ego_end + 80.0, 3.0, 18.0):
            lateral = -direction * (ROAD_HALF_WIDTH + rng.uniform(0.5, SIDEWALK_WIDTH - 0.5))
            speed = 0.0 if rng.random() < 0.2 else rng.choice([-1, 1]) * rng.uniform(1.0, 1.6)
            add("pedestrian", Motion(s, lateral, speed, z=CURB_HEIGHT))
    if world.intersection_s is not None:
        centre, tangent, normal, heading = world.path.frame_at(world.intersection_s)
        for sign in (-1, 1):  # vehicles waiting at the junction on the side road
            gap = ROAD_HALF_WIDTH + 3.5
            for k in range(int(rng.integers(0, 3))):
                along = sign * (gap + 3.0 + k * 7.0)
                xy = centre + normal * along + tangent * (-sign * 1.75)
                yaw = float(heading + (-np.pi / 2 if sign > 0 else np.pi / 2))
                add(vehicle_class(), Motion(fixed_pose=(xy[0], xy[1], SIDE_ROAD_Z, yaw)))
    return scenario
