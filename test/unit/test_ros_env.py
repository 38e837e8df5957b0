from __future__ import annotations

import os

import pytest

from ad_perception.ros_env import fastdds_profile_path, ros_environment


def test_discovery_range_is_forced_to_localhost():
    env = ros_environment({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"})
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"


def test_project_profile_applied_unless_disabled():
    env = ros_environment({})
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(fastdds_profile_path())
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in ros_environment(
        {"FASTDDS_DEFAULT_PROFILES_FILE": "/x.xml"}, profile=False
    )


def test_profile_keeps_udp_on_loopback():
    import xml.etree.ElementTree as ET

    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(fastdds_profile_path()).getroot()
    udp = [t for t in root.iterfind(".//d:transport_descriptor", ns)
           if t.findtext("d:type", namespaces=ns) == "UDPv4"]
    assert udp and all(
        [a.text for a in t.iterfind(".//d:address", ns)] == ["127.0.0.1"] for t in udp
    )
    assert root.findtext(".//d:useBuiltinTransports", namespaces=ns) == "false"
    shm = [t for t in root.iterfind(".//d:transport_descriptor", ns)
           if t.findtext("d:type", namespaces=ns) == "SHM"]
    assert int(shm[0].findtext("d:segment_size", namespaces=ns)) >= 32 * 1024 * 1024


def test_allocator_settings_reach_child_processes_unless_the_user_set_them():
    env = ros_environment({})
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(64 << 20)
    assert env["MALLOC_TRIM_THRESHOLD_"] == str(128 << 20)
    assert ros_environment({"MALLOC_MMAP_THRESHOLD_": "1"})["MALLOC_MMAP_THRESHOLD_"] == "1"
    assert "MALLOC_TRIM_THRESHOLD_" not in ros_environment({}, allocator=False)


def test_allocator_settings_apply_to_the_running_process():
    """glibc accepts both settings (this project runs on glibc Linux; elsewhere the call says
    it did nothing instead of failing)."""
    import platform

    from ad_perception.ros_env import keep_large_buffers_mapped

    expected = platform.libc_ver()[0] == "glibc"
    assert keep_large_buffers_mapped() is expected


def _blas_in_fresh_process(env_extra: dict[str, str]) -> dict:
    """BLAS pools are per process and sized when numpy loads: ask a new interpreter."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, numpy; from ad_perception.ros_env import blas_threads, "
            "limit_blas_threads; before = blas_threads(); applied = limit_blas_threads(); "
            "import cv2; "  # OpenCV bundles its own OpenBLAS, loaded after the limit
            "print(json.dumps({'before': before, 'applied': applied, "
            "'after': blas_threads()}))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env | env_extra, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_nodes_cap_blas_pools_at_one_thread():
    result = _blas_in_fresh_process({})
    assert result["before"], "numpy loaded no BLAS pool threadpoolctl can see"
    assert result["applied"] is True and len(result["after"]) == 2, result
    assert set(result["after"]) == {1}, result


def test_a_blas_thread_count_from_the_environment_is_kept():
    result = _blas_in_fresh_process({"OPENBLAS_NUM_THREADS": "2"})
    assert result["applied"] is False and result["before"] == [2], result
    assert set(result["after"]) == {2} and len(result["after"]) == 2, result


@pytest.mark.skipif(not hasattr(os, "SCHED_FIFO"), reason="Linux scheduling")
def test_the_realtime_check_leaves_the_calling_thread_as_it_was():
    """``check_realtime`` tries SCHED_FIFO on the calling thread and goes back (it runs before
    rclpy starts, so every thread created later inherits the ordinary policy); a refusal or
    a priority out of range is a RealtimeError that says what to fix."""
    from ad_perception.ros_env import RealtimeError, check_realtime

    before = os.sched_getscheduler(0)
    try:
        check_realtime(5)
    except RealtimeError as err:  # not root and no rtprio limit: refused, with the fix
        assert "ulimit -r 5" in str(err)
    assert os.sched_getscheduler(0) == before
    with pytest.raises(RealtimeError, match=r"rt priority must be in \[1, 99\], got 0"):
        check_realtime(0)
