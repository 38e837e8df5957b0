"""Process environment for anything that starts DDS participants (nodes, tests, demo).

Kept outside ``ros/`` because it imports no ROS module: launchers and the CLI set it before
rclpy is imported, and child processes inherit it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent

# glibc serves allocations above its mmap threshold (dynamic, from 128 kB) with fresh mmap'd
# pages and unmaps them on free, so every received 2 MB cloud or 2.7 MB image is copied into
# memory that first has to be faulted in page by page, zero-filled: about 1 ms per 2 MB hop on
# the development VM (scripts/bench_transport.py --allocator tuned,glibc; docs/benchmarks.md).
# Serving such buffers from the heap and keeping freed memory there keeps the pages mapped.
# Cost: a process keeps up to the trim threshold of freed memory instead of returning it.
MMAP_THRESHOLD_BYTES = 64 << 20
TRIM_THRESHOLD_BYTES = 128 << 20
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD_BYTES),
                 "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_BYTES)}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h

# numpy's OpenBLAS starts a worker per core and lets each spin for a while after every call
# before it sleeps. A node calls BLAS every frame (the fusion moves the 100k-point cloud into
# the camera frame with one matrix product), so its workers never sleep: on the 2-core
# development VM the fusion process burnt a whole core while fusing took 8 ms per frame, and
# both detectors' inference ran on what was left (docs/benchmarks.md, "The fusion process
# burnt a whole core in OpenBLAS"). A node's matrices are small; one thread, the calling
# one, computes them without the spinning pool.
BLAS_THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
NODE_BLAS_THREADS = 1


def fastdds_profile_path() -> Path | None:
    """The project Fast DDS profile: source tree first, then an installed share/ copy."""
    candidates = [PACKAGE_ROOT.parent / "config" / "fastdds.xml"]
    try:  # installed with colcon / ament: share/ad_perception/config
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("ad_perception"))
        candidates.append(share / "config" / "fastdds.xml")
    except Exception:  # noqa: BLE001 - ament index absent or package not installed there
        pass
    return next((path for path in candidates if path.is_file()), None)


def ros_environment(base: dict[str, str] | None = None, profile: bool = True,
                    allocator: bool = True) -> dict[str, str]:
    """A copy of ``base`` (default: os.environ) with DDS confined to loopback.

    Discovery range LOCALHOST is forced, not defaulted: any other value would let DDS
    multicast on external interfaces. The project Fast DDS profile is applied unless the
    caller set its own or passes ``profile=False`` (e.g. to measure the defaults); likewise
    the allocator settings for large messages (``ALLOCATOR_ENV``, read by glibc when a child
    process starts) unless the caller set them or passes ``allocator=False``.
    """
    env = dict(os.environ if base is None else base)
    if allocator:
        for name, value in ALLOCATOR_ENV.items():
            env.setdefault(name, value)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if profile:
        path = fastdds_profile_path()
        if path is not None:
            env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(path))
    else:
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    return env


def apply_ros_environment(profile: bool = True) -> None:
    """Set the loopback DDS environment on this process (call before importing rclpy), and
    the allocator settings for large messages, which glibc only reads from the environment at
    start-up, through ``mallopt`` for this running process."""
    tune_allocator()
    os.environ.update(ros_environment(profile=profile))


def tune_allocator() -> bool:
    """``keep_large_buffers_mapped`` unless the environment this process started with already
    configured glibc's allocator (then glibc has read it, and the user's choice stands)."""
    if any(name in os.environ for name in ALLOCATOR_ENV):
        return False
    return keep_large_buffers_mapped()


def limit_blas_threads(threads: int = NODE_BLAS_THREADS) -> bool:
    """Cap the BLAS thread pools loaded in this process (numpy's OpenBLAS) at ``threads``,
    unless the environment this process started with sized them (the user's choice stands).
    True when a limit was applied."""
    if any(name in os.environ for name in BLAS_THREAD_ENV):
        return False
    import numpy  # noqa: F401 - load its BLAS so the limit reaches it
    from threadpoolctl import threadpool_limits

    # pools loaded later (OpenCV bundles its own OpenBLAS) read their size from these when
    # they load; the ones already loaded are resized in place, for the process's lifetime
    os.environ.update({"OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    threadpool_limits(limits=threads, user_api="blas")
    return True


def blas_threads() -> list[int]:
    """Threads of every BLAS pool loaded in this process (what a node's summary reports)."""
    from threadpoolctl import threadpool_info

    return [int(pool["num_threads"]) for pool in threadpool_info()
            if pool.get("user_api") == "blas"]


def keep_large_buffers_mapped() -> bool:
    """Serve message-sized allocations from the heap and keep freed memory mapped (see
    ``ALLOCATOR_ENV``) in this process; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no libc found, or one without mallopt (musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)


# Fast DDS names its receive threads dds.shm.<port> (shared memory) and dds.udp.<port>; its
# shared-memory watchdog, dds.shm.wdog, is left alone. A message for a node goes from one of
# them to the executor thread, which runs the callback; ``prioritise_communication`` lets
# both preempt inference. On the 2-core development VM that did not pay (docs/benchmarks.md,
# "SCHED_FIFO for the executor and DDS receive threads"), so it is opt-in.
COMMUNICATION_THREAD_PREFIXES = ("dds.shm.", "dds.udp.")


class RealtimeError(RuntimeError):
    """The process may not use SCHED_FIFO; the message says how to allow it."""


def _thread_names() -> dict[int, str]:
    names = {}
    for entry in Path("/proc/self/task").iterdir():
        try:
            names[int(entry.name)] = (entry / "comm").read_text().strip()
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return names


def _realtime_refused(name: str, priority: int, err: OSError) -> RealtimeError:
    return RealtimeError(
        f"cannot raise thread {name!r} to SCHED_FIFO {priority} ({err}); allow it with "
        f"CAP_SYS_NICE or an rtprio limit (ulimit -r {priority}), or leave rt_priority at 0")


def _check_fifo_priority(priority: int) -> None:
    if not hasattr(os, "SCHED_FIFO"):
        raise RealtimeError("SCHED_FIFO is not available on this platform")
    low, high = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    if not low <= priority <= high:
        raise RealtimeError(f"rt priority must be in [{low}, {high}], got {priority}")


def check_realtime(priority: int) -> None:
    """Fail before anything starts when ``priority`` is out of range or the process may not
    use SCHED_FIFO: the calling thread tries it and goes straight back to its own policy."""
    _check_fifo_priority(priority)
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError as err:
        raise _realtime_refused("main", priority, err) from err
    os.sched_setscheduler(0, policy, param)


def prioritise_communication(priority: int, include_caller: bool = True) -> list[str]:
    """Put the calling thread (the executor's) and the DDS receive threads on SCHED_FIFO at
    ``priority``; every other thread (inference workers, OpenVINO's, BLAS) stays where it is.

    Call it after the node exists (its participant has started the DDS threads) and from
    the thread that will spin. Returns the names of the threads raised. Linux only; needs
    CAP_SYS_NICE or an RLIMIT_RTPRIO of at least ``priority`` (``ulimit -r``, or
    ``rtprio`` in /etc/security/limits.conf), as ROS 2 real-time setups do.
    ``include_caller=False`` raises only receive threads not on SCHED_FIFO yet (Fast DDS
    starts some after the node exists; the nodes re-check from a timer).
    """
    _check_fifo_priority(priority)  # a refusal shows on the first thread raised below
    own = threading.get_native_id() if include_caller else None
    raised = []
    for tid, name in sorted(_thread_names().items()):
        receiver = name.startswith(COMMUNICATION_THREAD_PREFIXES) and name != "dds.shm.wdog"
        if tid != own and not receiver:
            continue
        if own is None and _scheduler(tid) in (os.SCHED_FIFO, None):
            continue  # raised already, or ended meanwhile
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
        except PermissionError as err:
            raise _realtime_refused(name, priority, err) from err
        except ProcessLookupError:  # the thread ended meanwhile
            continue
        raised.append("executor" if tid == own else name)
    return raised


def _scheduler(tid: int) -> int | None:
    """The scheduling policy of thread ``tid``; None when it has ended meanwhile."""
    try:
        return os.sched_getscheduler(tid)
    except OSError:
        return None


def fifo_threads() -> list[str]:
    """Names of this process's threads that run under SCHED_FIFO (sorted, repeats kept)."""
    fifo = getattr(os, "SCHED_FIFO", None)
    if fifo is None:
        return []
    return sorted(name for tid, name in _thread_names().items() if _scheduler(tid) == fifo)
