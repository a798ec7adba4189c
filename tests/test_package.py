"""The ROS 2 package description, build files and set-up pieces are consistent."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

from robo_common import constants


def test_package_xml_is_valid_format3(repo_root: Path) -> None:
    pkg = parse_package(str(repo_root / "package.xml"))
    assert pkg.name == constants.PACKAGE_NAME
    assert pkg.package_format == 3
    assert pkg.get_build_type() == "ament_cmake"
    buildtool = {d.name for d in pkg.buildtool_depends}
    assert {"ament_cmake", "ament_cmake_python", "rosidl_default_generators"} <= buildtool
    deps = {d.name for d in pkg.build_depends} | {d.name for d in pkg.exec_depends}
    assert {"std_msgs", "geometry_msgs", "sensor_msgs", "rclpy", "rosidl_default_runtime"} <= deps
    assert "rosidl_interface_packages" in {g.name for g in pkg.member_of_groups}


def test_cmake_generates_every_msg_file(repo_root: Path) -> None:
    cmake = (repo_root / "CMakeLists.txt").read_text()
    listed = set(re.findall(r'"(msg/\w+\.msg)"', cmake))
    on_disk = {f"msg/{p.name}" for p in (repo_root / "msg").glob("*.msg")}
    assert listed == on_disk
    srvs = set(re.findall(r'"(srv/\w+\.srv)"', cmake))
    assert srvs == {f"srv/{p.name}" for p in (repo_root / "srv").glob("*.srv")}
    actions = set(re.findall(r'"(action/\w+\.action)"', cmake))
    assert actions == {f"action/{p.name}" for p in (repo_root / "action").glob("*.action")}
    assert "action/ExecuteInstruction.action" in actions and "action_msgs" in cmake
    assert {"msg/Keypoint.msg", "msg/Subtask.msg", "msg/Plan.msg", "msg/FailureReport.msg",
            "msg/ExecutionStatus.msg"} <= on_disk


def test_cmake_installs_every_python_package_and_node(repo_root: Path) -> None:
    cmake = (repo_root / "CMakeLists.txt").read_text()
    packages = set(re.search(r"set\(ROBO_STACK_PYTHON_PACKAGES([^)]*)\)", cmake).group(1).split())
    on_disk = {p.parent.name for p in repo_root.glob("robo_*/__init__.py")}
    assert packages == on_disk
    nodes = set(re.search(r"set\(ROBO_STACK_NODES([^)]*)\)", cmake).group(1).split())
    assert nodes == {p.name for p in (repo_root / "nodes").glob("*") if p.is_file()} if nodes else True
    for node in nodes:
        assert (repo_root / "nodes" / node).stat().st_mode & 0o111, f"nodes/{node} is not executable"


def test_topic_table_has_qos_for_every_topic() -> None:
    topics = [v for k, v in vars(constants).items() if k.startswith("TOPIC_") and isinstance(v, str)]
    assert len(topics) >= 14
    for topic in topics:
        assert topic.startswith("/")
        if topic != constants.TOPIC_CLOCK:
            assert topic in constants.TOPIC_QOS, topic
    assert constants.TOPIC_QOS[constants.TOPIC_PLAN] == constants.QOS_LATCHED
    assert constants.TOPIC_QOS[constants.TOPIC_COLOR_IMAGE].reliability is constants.Reliability.BEST_EFFORT


def test_rclpy_profiles_from_choices() -> None:
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from robo_common.ros.qos import qos_for_topic

    plan = qos_for_topic(constants.TOPIC_PLAN)
    assert plan.durability == DurabilityPolicy.TRANSIENT_LOCAL and plan.depth == 1
    assert plan.reliability == ReliabilityPolicy.RELIABLE
    assert qos_for_topic(constants.TOPIC_COLOR_IMAGE).reliability == ReliabilityPolicy.BEST_EFFORT


def test_patch_script_rewrites_foreign_paths(tmp_path: Path, repo_root: Path) -> None:
    import sysconfig

    import numpy

    cmake_dir = tmp_path / "share" / "fake_msgs" / "cmake"
    cmake_dir.mkdir(parents=True)
    (tmp_path / "share" / "rosidl_cmake").mkdir()
    export = cmake_dir / "export_fake_msgs__rosidl_generator_pyExport.cmake"
    export.write_text(
        'INTERFACE_INCLUDE_DIRECTORIES "/opt/python/cp311-cp311/include/python3.11;'
        '/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"\n'
    )
    script = repo_root / "scripts" / "patch_ros_cmake_exports.py"
    for _ in range(2):  # idempotent
        out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, check=True)
    assert "patched 0" in out.stdout
    text = export.read_text()
    assert "/opt/python" not in text
    assert sysconfig.get_paths()["include"] in text and numpy.get_include() in text


def test_installed_prefix_has_no_foreign_python_paths() -> None:
    prefix = Path(sys.prefix)
    offenders = [p for p in prefix.glob("share/*/cmake/*.cmake") if "/opt/python/cp3" in p.read_text()]
    assert offenders == []


@pytest.mark.parametrize("config, node, module", [("sim", "sim_node", "robo_sim.node"),
                                                 ("brain", "brain_node", "robo_brain.node"),
                                                 ("cerebellum", "cerebellum_node", "robo_cerebellum.node")])
def test_config_files_match_declared_parameters(repo_root: Path, config: str, node: str, module: str) -> None:
    """Every parameter in config/<name>.yaml is declared by its node, with the same default type."""
    import importlib

    import yaml

    declared = importlib.import_module(module).PARAMETERS
    data = yaml.safe_load((repo_root / "config" / f"{config}.yaml").read_text())
    # "/**/<node>" matches the node in any namespace (a plain "<node>:" key would not apply under one)
    assert list(data) == [f"/**/{node}"]
    params = data[f"/**/{node}"]["ros__parameters"]
    optional = {"checkpoint"}  # defaults to the package's shipped model, a path only the node can know
    assert set(params) | (optional & set(declared)) == set(declared)
    for name, value in params.items():
        default, description = declared[name][:2]
        assert type(value) is type(default) or (isinstance(default, float) and isinstance(value, int)), name
        assert description
