"""Architecture rules that keep the package usable where ROS is absent (the GPU machine, CI
units, offline tools): only ad_perception/ros imports rclpy or message modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ad_perception

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ad_perception"
ROS_MODULE = re.compile(r"^(rclpy|launch|launch_ros|\w+_msgs|\w+_interfaces|rosidl_\w+)(\.|$)")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_only_ros_subpackage_imports_ros():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "ros":
            continue
        offenders += [f"{path.relative_to(ROOT)}: {name}" for name in _imports(path)
                      if ROS_MODULE.match(name)]
    assert not offenders, "ROS imports outside ad_perception/ros:\n" + "\n".join(offenders)


def test_unit_tests_do_not_import_ros():
    offenders = []
    for path in (ROOT / "test" / "unit").rglob("*.py"):
        offenders += [f"{path.name}: {name}" for name in _imports(path) if ROS_MODULE.match(name)]
    assert not offenders, "\n".join(offenders)


def test_modules_stay_small():
    """STYLE.md: one concern per file, under ~400 lines (500 is the hard stop)."""
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert not too_long, too_long


def test_one_version_number():
    version = ad_perception.__version__
    package_xml = (ROOT / "package.xml").read_text(encoding="utf-8")
    assert f"<version>{version}</version>" in package_xml
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    first_release = re.search(r"^## \[?(\d+\.\d+\.\d+)", changelog, re.MULTILINE)
    assert first_release and first_release.group(1) == version
