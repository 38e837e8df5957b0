"""ament_python build of ad_perception (colcon on a ROS install, pip install -e in a venv)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ad_perception"


def _version() -> str:
    namespace: dict = {}
    with open(f"{PACKAGE}/__init__.py", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("__version__"):
                exec(line, namespace)
    return namespace["__version__"]


# One console script per node, so `ros2 run ad_perception <node>` works on a ROS install.
# Node modules live in ad_perception/ros/.
NODES: dict[str, str] = {
    "camera_detector": f"{PACKAGE}.ros.camera_detector_node:main",
    "lidar_detector": f"{PACKAGE}.ros.lidar_detector_node:main",
    "fusion": f"{PACKAGE}.ros.fusion_node:main",
    "latency_monitor": f"{PACKAGE}.ros.latency_monitor_node:main",
    "perception_composed": f"{PACKAGE}.ros.composed:main",
}

setup(
    name=PACKAGE,
    version=_version(),
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/config/compression", glob("config/compression/*.yaml")),
    ],
    # Shipped baselines and shipped compressed variants (one directory each, any files).
    package_data={PACKAGE: ["models/weights/*.pt", "models/weights/*.json",
                            "models/weights/variants/*/*/*", "models/weights/variants/*/*/*/*"]},
    include_package_data=True,
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="ad_perception maintainers",
    maintainer_email="ad-perception@example.com",
    description="Compressed camera/lidar perception for ROS 2 with compression and bag replay "
    "evaluation",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [f"ad-perception = {PACKAGE}.cli:main"]
        + [f"{name} = {target}" for name, target in NODES.items()],
    },
)
