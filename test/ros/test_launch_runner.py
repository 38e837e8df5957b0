"""``ad-perception launch``: launch files evaluated by the shim, nodes supervised like ros2 launch.

The report node (fixtures/report_node.py) is installed into a fake ament prefix, the way
colcon would install a console script, and writes what rcl actually resolved (name,
namespace, parameters, remapped topic, environment) so the tests check the command line
through rcl rather than by string matching alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ad_perception import cli
from ad_perception.ros.launch_runner import LaunchArgumentError, LaunchError, LaunchRunner

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
PACKAGE = "ad_launch_test"


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake install prefix: lib/<pkg>/report_node, share/<pkg>/config, ament index marker."""
    root = tmp_path_factory.mktemp("prefix")
    lib = root / "lib" / PACKAGE
    lib.mkdir(parents=True)
    source = (FIXTURES / "report_node.py").read_text().splitlines(keepends=True)
    executable = lib / "report_node"
    executable.write_text(f"#!{sys.executable}\n" + "".join(source[1:]))
    executable.chmod(0o755)
    share = root / "share" / PACKAGE / "config"
    share.mkdir(parents=True)
    (share / "params.yaml").write_text((FIXTURES / "params.yaml").read_text())
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / PACKAGE).write_text("")
    return root


@pytest.fixture
def environ(prefix: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    paths = [str(prefix), *filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(":"))]
    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(paths))
    return dict(os.environ)


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _runner(path: str, arguments: dict[str, str], environ: dict[str, str]) -> LaunchRunner:
    return LaunchRunner(FIXTURES / path, arguments, environ=environ,
                        output=lambda name, line, err: None,
                        sigterm_timeout=3.0, sigkill_timeout=2.0)


def test_plan_builds_the_ros_command_line(environ: dict[str, str], tmp_path: Path) -> None:
    plan = _runner("main.launch.py", {"out_dir": str(tmp_path), "mode": "accurate"},
                   environ).plan()
    try:
        assert [p.name for p in plan.processes] == ["reporter"]  # include off, Unless(true)
        reporter = plan.processes[0]
        cmd = reporter.cmd
        assert cmd[0].endswith(f"lib/{PACKAGE}/report_node")
        assert cmd[1:8] == ["--extra-flag", "--ros-args", "-r", "__node:=reporter",
                            "-r", "__ns:=/perception", "--params-file"]
        assert cmd[8].endswith(f"share/{PACKAGE}/config/params.yaml")
        generated = cmd[10]
        assert cmd[9] == "--params-file" and generated in reporter.params_files
        assert Path(generated).read_text().startswith("/perception/reporter:")
        assert cmd[-2:] == ["-r", "chatter:=/sensing/camera/front"]
        delta = plan.env_delta(reporter)
        assert delta["AD_LAUNCH_TEST_VAR"] == "mode-accurate"
        assert delta["NODE_ONLY_VAR"] == "yes"
        assert reporter.env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
        assert plan.configurations["rate"] == "12.5"
    finally:
        plan.close()
    assert not Path(generated).exists()
    assert "launch" not in sys.modules or not hasattr(sys.modules["launch"], "_ad_shim")


def test_cli_dry_run_prints_commands_and_env(environ: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ad_perception.cli", "launch",
         str(FIXTURES / "main.launch.py"), f"out_dir:={tmp_path}", "with_peer:=true",
         "--dry-run"], cwd=REPO, env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[reporter] package=ad_launch_test" in out and "[peer] package=ad_launch_test" in out
    assert "-r __node:=reporter -r __ns:=/perception" in out
    assert "env: AD_LAUNCH_TEST_VAR=mode-fast" in out
    assert "/**:" in out  # the peer has no namespace: its dict parameters use the wildcard
    assert not list(tmp_path.iterdir())  # nothing was started


@pytest.mark.parametrize(("args", "code", "message"), [
    (["bogus:=1"], 2, "unknown launch argument(s) 'bogus'"),
    (["mode:=slow"], 2, "Valid options are: ['fast', 'accurate']"),
    ([], 2, "missing required argument 'out_dir'"),
])
def test_argument_errors_are_clear(environ: dict[str, str], capsys: pytest.CaptureFixture,
                                   args: list[str], code: int, message: str) -> None:
    argv = ["launch", str(FIXTURES / "main.launch.py"), *args]
    if args:
        argv.append("out_dir:=/nonexistent")
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert message in err
    if args == ["bogus:=1"]:
        assert "out_dir: folder the nodes write reports to" in err  # lists what is declared


def test_missing_executable_names_package_and_places(environ: dict[str, str],
                                                      capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["launch", str(FIXTURES / "missing_exe.launch.py")]) == 1
    err = capsys.readouterr().err
    assert "executable 'no_such_node' of package 'ad_launch_test' not found" in err
    assert f"lib/{PACKAGE}/no_such_node" in err
    with pytest.raises(LaunchArgumentError):
        _runner("main.launch.py", {"out_dir": "/x", "mode": "x"}, environ).plan()
    with pytest.raises(LaunchError, match="launch file not found"):
        _runner("absent.launch.py", {}, environ).plan()


def test_nodes_receive_names_params_remaps_and_env(environ: dict[str, str],
                                                   tmp_path: Path) -> None:
    runner = _runner("main.launch.py", {"out_dir": str(tmp_path), "mode": "accurate",
                                        "with_peer": "true", "label": "lidar"}, environ)
    reports = [tmp_path / "reporter.json", tmp_path / "peer.json"]
    with runner.start() as handle:
        assert _wait_for(lambda: all(r.exists() for r in reports), 30.0), list(handle.lines)
        assert _wait_for(lambda: "ready" in handle.output_of("peer"), 10.0)
        assert set(handle.processes) == {"reporter", "peer"}
        assert handle.stop(15.0) == 0, list(handle.lines)
        assert all(p.returncode is not None for p in handle.processes.values())
    reporter, peer = (json.loads(r.read_text()) for r in reports)
    assert (reporter["name"], reporter["namespace"]) == ("reporter", "/perception")
    assert reporter["topic"] == "/sensing/camera/front"
    assert reporter["extra_flag"] is True
    assert reporter["params"] == {
        "report_path": str(reports[0]), "label": "lidar", "count": 3, "rate_hz": 12.5,
        "from_file": "yaml-value", "nested.depth": 2,
        "profile": str(REPO / "config" / "fastdds.xml")}
    assert reporter["env"] == {"AD_LAUNCH_TEST_VAR": "mode-accurate", "NODE_ONLY_VAR": "yes",
                               "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    assert (peer["name"], peer["namespace"], peer["topic"]) == ("peer", "/", "/chatter")
    assert peer["params"]["label"] == "lidar"  # include arguments and configs are global
    assert peer["env"]["NODE_ONLY_VAR"] is None


def test_dying_node_stops_the_others_and_fails(environ: dict[str, str], tmp_path: Path) -> None:
    runner = _runner("supervise.launch.py", {"out_dir": str(tmp_path), "crash": "true"},
                     environ)
    with runner.start() as handle:
        assert handle.wait(20.0) == 1, list(handle.lines)
        assert handle.failed == "crasher"
        assert handle.processes["crasher"].returncode == 3
        assert handle.processes["stayer"].returncode == 0  # stopped by SIGINT, cleanly
    assert any("exit code 3" in line for line in handle.output_of("launch"))
    assert "ready" in handle.output_of("stayer")


def test_sigterm_to_runner_stops_children_and_exits_zero(environ: dict[str, str],
                                                         tmp_path: Path) -> None:
    runner = subprocess.Popen(
        [sys.executable, "-m", "ad_perception.cli", "launch",
         str(FIXTURES / "supervise.launch.py"), f"out_dir:={tmp_path}",
         "--sigterm-timeout", "3"],
        cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = tmp_path / "stayer.pid"
    child = None
    try:
        assert _wait_for(pid_file.exists, 30.0)
        child = json.loads(pid_file.read_text())["pid"]
        runner.send_signal(signal.SIGTERM)
        out, err = runner.communicate(timeout=15)
        assert runner.returncode == 0, err
        assert "[stayer] ready" in out
        assert "sending SIGINT to stayer" in err
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(5)
        if child is not None:
            try:
                os.killpg(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


SCOPES_LAUNCH = '''
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, GroupAction, LogInfo, OpaqueFunction,
                            SetEnvironmentVariable, SetLaunchConfiguration)
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PythonExpression
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.parameter_descriptions import ParameterValue


def _late(context):
    return [LogInfo(msg="late sees " + LaunchConfiguration("scope").perform(context))]


def generate_launch_description():
    node = dict(package="ad_launch_test", executable="report_node")
    return LaunchDescription([
        DeclareLaunchArgument("scope", default_value="outer"),
        GroupAction([
            PushRosNamespace("vehicle"),
            SetLaunchConfiguration("scope", "inner"),
            SetEnvironmentVariable("GROUP_ONLY", "1"),
            Node(name="grouped", namespace="sensors", respawn=LaunchConfiguration("scope"),
                 parameters=[{"zoom": ParameterValue("007", value_type=str),
                              "doubled": PythonExpression(["2 * ", "21"])}], **node),
        ], launch_configurations={"unused": "x"}),
        Node(name="outside", respawn=True, respawn_delay=0.5,
             additional_env={"SEEN": EnvironmentVariable("GROUP_ONLY", default_value="no")},
             **node),
        OpaqueFunction(function=_late),
    ])
'''


def test_groups_namespaces_and_opaque_functions(environ: dict[str, str],
                                                tmp_path: Path) -> None:
    launch_file = tmp_path / "scopes.launch.py"
    launch_file.write_text(SCOPES_LAUNCH)
    with pytest.raises(LaunchError, match="neither true/false"):  # respawn:=inner
        LaunchRunner(launch_file, environ=environ).plan()
    launch_file.write_text(SCOPES_LAUNCH.replace('"inner"', '"true"'))
    plan = LaunchRunner(launch_file, environ=environ).plan()
    try:
        grouped, outside = plan.processes
        assert "__ns:=/vehicle/sensors" in grouped.cmd and grouped.respawn
        assert (outside.respawn, outside.respawn_delay) == (True, 0.5)
        assert "__ns:=/vehicle/sensors" not in outside.cmd  # the push was scoped
        assert not any(a.startswith("__ns:=") for a in outside.cmd)
        text = next(iter(grouped.params_files.values()))
        assert "/vehicle/sensors/grouped:" in text and "zoom: '007'" in text
        assert "doubled: 42" in text
        assert grouped.env["GROUP_ONLY"] == "1" and "GROUP_ONLY" not in outside.env
        assert outside.env["SEEN"] == "no"
        assert plan.messages == ["late sees outer"]
        assert "GROUP_ONLY" not in os.environ
    finally:
        plan.close()


def test_respawned_node_is_restarted_not_fatal(environ: dict[str, str], tmp_path: Path) -> None:
    runner = _runner("supervise.launch.py", {"out_dir": str(tmp_path), "crash": "true",
                                             "respawn": "true", "exit_code": "0"}, environ)
    with runner.start() as handle:
        def restarts() -> int:
            return sum("started" in line and line.endswith(": crasher")
                       for line in handle.output_of("launch"))

        assert _wait_for(lambda: restarts() >= 2, 15.0), list(handle.lines)
        assert handle.wait(0.1) is None and handle.failed is None
        assert handle.stop(15.0) == 0, list(handle.lines)
