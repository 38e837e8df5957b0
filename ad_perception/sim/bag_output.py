"""Writes a drive of the embedded world as a rosbag2 folder plus the ground-truth sidecar.

Stamps are the fixed epoch plus the frame index, so the same seed gives the same bytes.
"""

from __future__ import annotations

import os
import pickle
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ad_perception.core.types import PointCloud
from ad_perception.data import msg_build
from ad_perception.data.bag_types import typestore
from ad_perception.data.bag_writer import BagWriter, write_sidecar
from ad_perception.sim.scenario import FRAME_PERIOD_S
from ad_perception.sim.sensors import (
    EPOCH_NS,
    GT_BOXES_TOPIC,
    GT_OBJECTS_TOPIC,
    PRESETS,
    SIDECAR_NAME,
    T_BASE_FROM_CAMERA,
    T_BASE_FROM_LIDAR,
)
from ad_perception.sim.simulator import SimFrame, Simulator

IMAGE, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"
CLOUD, TF = "sensor_msgs/msg/PointCloud2", "tf2_msgs/msg/TFMessage"
DET3D, DET2D = "vision_msgs/msg/Detection3DArray", "vision_msgs/msg/Detection2DArray"


def frame_stamp_ns(index: int) -> int:
    return EPOCH_NS + int(round(index * FRAME_PERIOD_S * 1e9))


def _frame_payloads(store, sim: Simulator, frame: SimFrame, preset) -> list[tuple]:
    """(topic, msgtype, stamp, CDR bytes) of one frame's messages, in writing order. The
    bytes are made where the frame is (a worker process or the writer's own), so only they,
    not the images, travel between processes."""
    stamp = frame_stamp_ns(frame.index)
    pixels = frame.rgb
    if preset.image_encoding == "bgra8":
        alpha = np.full(pixels.shape[:2] + (1,), 255, np.uint8)
        pixels = np.concatenate([pixels[:, :, ::-1], alpha], axis=2)
    cam = sim.camera
    scan = frame.scan
    cloud = PointCloud(scan.xyz, scan.intensity, scan.ring)
    messages = [
        (
            preset.image_topic,
            IMAGE,
            msg_build.image_msg(pixels, preset.image_encoding, stamp, preset.camera_frame),
        ),
        (
            preset.camera_info_topic,
            INFO,
            msg_build.camera_info_msg(sim.K, cam.width, cam.height, stamp, preset.camera_frame),
        ),
        (
            preset.lidar_topic,
            CLOUD,
            msg_build.pointcloud2_msg(cloud, stamp, preset.lidar_frame, preset.lidar_ring),
        ),
        (
            GT_OBJECTS_TOPIC,
            DET3D,
            msg_build.detection3d_array_msg(frame.boxes_lidar, stamp, preset.lidar_frame),
        ),
        (
            GT_BOXES_TOPIC,
            DET2D,
            msg_build.detection2d_array_msg(frame.boxes_2d, stamp, preset.camera_frame),
        ),
    ]
    return [
        (topic, msgtype, stamp, bytes(store.serialize_cdr(msg, msgtype)))
        for topic, msgtype, msg in messages
    ]


def default_workers(frames: int) -> int:
    """One frame-generating process per available core (at most 8, at most one per frame);
    1 means everything runs in the calling process."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8, frames))


# Each worker is a whole renderer + ray caster of its own; nested thread pools (BLAS, llvmpipe)
# would only fight the other workers for the same cores.
_WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _worker_main(seed: int, frames: int, preset_name: str, first: int, step: int, out) -> None:
    """Worker process: frames first, first + step, ... of the drive, as ready-made payloads.
    Frames are a pure function of (seed, index), so the split cannot change any byte."""
    import traceback

    def fail(err: BaseException) -> None:
        detail = traceback.format_exc()
        try:
            pickle.dumps(err)
        except Exception:  # noqa: BLE001 - anything unpicklable is sent as text
            err = RuntimeError(f"{type(err).__name__}: {err}")
        out.put(("error", (err, detail)))

    try:
        sim = Simulator(seed, frames)
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which re-raises it
        fail(err)
        return
    try:
        out.put(("ready", sim.metadata()))
        store = typestore()
        preset = PRESETS[preset_name]
        for index in range(first, frames, step):
            stages: dict[str, float] = {}
            frame = sim.frame(index, stages=stages)
            t = time.perf_counter()
            payloads = _frame_payloads(store, sim, frame, preset)
            stages["bag_write"] = time.perf_counter() - t
            out.put(("frame", (index, payloads, frame.extras, stages)))
    except BaseException as err:  # noqa: BLE001 - likewise
        fail(err)
    finally:
        sim.close()


class _WorkerPool:
    """``workers`` spawned processes (never forked: each makes its own EGL context), worker
    k generating frames k, k + workers, ...; results are taken back in frame order."""

    def __init__(self, seed: int, frames: int, preset_name: str, workers: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._queues = [ctx.Queue(maxsize=2) for _ in range(workers)]
        self._procs = [
            ctx.Process(
                target=_worker_main,
                args=(seed, frames, preset_name, k, workers, self._queues[k]),
                name=f"sim-worker-{k}",
                daemon=True,
            )
            for k in range(workers)
        ]
        saved = {k: os.environ.get(k) for k in _WORKER_ENV}
        try:
            for key, value in _WORKER_ENV.items():
                os.environ.setdefault(key, value)
            for proc in self._procs:
                proc.start()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _get(self, k: int, expect: str):
        import queue

        while True:
            try:
                kind, payload = self._queues[k].get(timeout=1.0)
                break
            except queue.Empty:
                if not self._procs[k].is_alive():
                    code = self._procs[k].exitcode
                    raise RuntimeError(f"simulator worker {k} died (exit code {code})") from None
        if kind == "error":
            err, detail = payload
            raise err from RuntimeError(f"in simulator worker {k}:\n{detail}")
        if kind != expect:
            raise RuntimeError(f"simulator worker {k} sent {kind!r}, expected {expect!r}")
        return payload

    def wait_ready(self) -> dict:
        metadata = [self._get(k, "ready") for k in range(len(self._procs))]
        return metadata[0]

    def frame(self, index: int):
        return self._get(index % len(self._procs), "frame")

    def close(self) -> None:
        for proc in self._procs:
            proc.join(timeout=5.0)
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for q in self._queues:
            q.close()
            q.cancel_join_thread()


def generate_bag(
    out: Path | str,
    frames: int,
    seed: int,
    storage: str = "mcap",
    preset_name: str = "default",
    progress: bool = True,
    stage_seconds: dict[str, float] | None = None,
    workers: int | None = None,
) -> Path:
    """Simulate ``frames`` frames and write them; ``stage_seconds`` (if given) accumulates
    time per stage for the benchmark (with several workers, summed over the workers).

    ``workers`` processes generate frames in parallel (default: ``default_workers``; 1 runs
    everything here); the bytes written do not depend on it. Workers are spawned, so a
    script calling this with workers > 1 needs the usual ``if __name__ == "__main__":``."""
    if preset_name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset_name!r}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    workers = default_workers(frames) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    workers = min(workers, frames)
    preset = PRESETS[preset_name]
    stages = stage_seconds if stage_seconds is not None else defaultdict(float)

    def add(name: str, seconds: float) -> None:
        stages[name] = stages.get(name, 0.0) + seconds

    out = Path(out)
    if out.exists():  # before any worker starts: rosbag2 writes a new folder
        raise FileExistsError(f"{out} exists; rosbag2 writes a new folder")
    t0 = time.perf_counter()
    sim = pool = None
    try:
        if workers == 1:
            sim = Simulator(seed, frames)
            metadata = sim.metadata()
        else:
            pool = _WorkerPool(seed, frames, preset_name, workers)
            metadata = pool.wait_ready()
        add("setup", time.perf_counter() - t0)
        records = [
            {
                "type": "scene",
                "preset": preset_name,
                "storage": storage,
                "camera_frame": preset.camera_frame,
                "lidar_frame": preset.lidar_frame,
                **metadata,
            }
        ]
        iterator = range(frames)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc=f"sim seed {seed}", unit="frame")
        with BagWriter(out, storage) as writer:
            writer.write(
                "/tf_static",
                TF,
                EPOCH_NS,
                msg_build.tf_message(
                    [
                        ("base_link", preset.lidar_frame, T_BASE_FROM_LIDAR),
                        ("base_link", preset.camera_frame, T_BASE_FROM_CAMERA),
                    ],
                    EPOCH_NS,
                ),
            )
            store = typestore()
            for index in iterator:
                if pool is None:
                    frame = sim.frame(index, stages=stages)
                    t = time.perf_counter()
                    payloads = _frame_payloads(store, sim, frame, preset)
                    extras = frame.extras
                else:
                    done, payloads, extras, frame_stages = pool.frame(index)
                    assert done == index, (done, index)
                    for name, seconds in frame_stages.items():
                        add(name, seconds)
                    t = time.perf_counter()
                for topic, msgtype, stamp, payload in payloads:
                    writer.write_raw(topic, msgtype, stamp, payload)
                add("bag_write", time.perf_counter() - t)
                records.append(
                    {
                        "type": "frame",
                        "index": index,
                        "stamp_ns": frame_stamp_ns(index),
                        "objects": extras,
                    }
                )
        write_sidecar(out, SIDECAR_NAME, records)
    finally:
        if sim is not None:
            sim.close()
        if pool is not None:
            pool.close()
    return out
