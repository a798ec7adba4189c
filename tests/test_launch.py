"""The launch files mention only executables, parameter files, parameters and topics that exist.

``launch``/``launch_ros`` are not installable here, so the launch files are read as Python
syntax trees (never executed) and every name in them is checked against the package: node
executables (``nodes/`` and CMakeLists), parameter files (``config/``), parameter names (each
node's ``PARAMETERS``), remapped topics (the nodes' relative topic names) and that every
argument is declared with a description. The processes the demo starts are checked against the
launch files' executables and parameter files, and a node started in a namespace is checked to
move its topics under it.
"""

from __future__ import annotations

import ast
import importlib
import time
from pathlib import Path

import pytest

from robo_common import constants as C
from robo_system.stack import NODE_PARAMS_FILES, StackConfig

NODE_MODULES = {"sim_node": "robo_sim.node", "brain_node": "robo_brain.node", "cerebellum_node": "robo_cerebellum.node"}
BUILTIN_PARAMETERS = {"use_sim_time"}
LAUNCH_FILES = ("bringup.launch.py", "sim.launch.py")


def _tree(repo_root: Path, name: str) -> ast.Module:
    return ast.parse((repo_root / "launch" / name).read_text())


def _calls(tree: ast.AST, func: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == func]


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _arguments(tree: ast.Module) -> list[tuple[str, str]]:
    """(name, description) of the ARGUMENTS table."""
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    return [(ast.literal_eval(t.elts[0]), ast.literal_eval(t.elts[2])) for t in table.elts]


def _nodes(tree: ast.Module) -> list[dict]:
    out = []
    for call in _calls(tree, "Node"):
        params = _kw(call, "parameters")
        names = [ast.literal_eval(k) for d in ast.walk(params) if isinstance(d, ast.Dict) for k in d.keys]
        remaps = _kw(call, "remappings")
        sources = [ast.literal_eval(t.elts[0]) for t in ast.walk(remaps) if isinstance(t, ast.Tuple)] if remaps else []
        out.append({"executable": ast.literal_eval(_kw(call, "executable")),
                    "name": ast.literal_eval(_kw(call, "name")), "parameters": names, "remaps": sources})
    return out


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_launch_file_names_exist(repo_root: Path, launch_file: str) -> None:
    tree = _tree(repo_root, launch_file)
    args = _arguments(tree)
    assert args and all(text.strip() for _, text in args), "every argument needs a description"
    declared_args = {name for name, _ in args}
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, "LaunchConfiguration") if c.args
            and isinstance(c.args[0], ast.Constant)}
    assert used <= declared_args, f"undeclared launch arguments: {used - declared_args}"
    cmake = (repo_root / "CMakeLists.txt").read_text()
    for yaml_name in {e.value for e in ast.walk(tree) if isinstance(e, ast.Constant)
                      and str(e.value).endswith(".yaml")}:
        assert (repo_root / "config" / yaml_name).is_file(), yaml_name
    for node in _nodes(tree):
        exe = node["executable"]
        assert (repo_root / "nodes" / exe).is_file() and exe in cmake, f"{exe}: no executable / not installed"
        assert node["name"] == exe
        declared = set(importlib.import_module(NODE_MODULES[exe]).PARAMETERS) | BUILTIN_PARAMETERS
        assert set(node["parameters"]) <= declared, f"{exe} does not declare {set(node['parameters']) - declared}"
        topics = {C.relative(v) for n, v in vars(C).items() if n.startswith("TOPIC_") and isinstance(v, str)}
        assert set(node["remaps"]) <= topics, f"{exe} remaps unknown topics {set(node['remaps']) - topics}"


def test_sim_launch_includes_bringup_and_forwards_declared_arguments(repo_root: Path) -> None:
    sim, bringup = _tree(repo_root, "sim.launch.py"), _tree(repo_root, "bringup.launch.py")
    text = (repo_root / "launch" / "sim.launch.py").read_text()
    assert "bringup.launch.py" in text and _calls(sim, "IncludeLaunchDescription")
    forwarded = next(n.value for n in sim.body if isinstance(n, ast.Assign) and n.targets[0].id == "FORWARDED")
    names = set(ast.literal_eval(forwarded))
    assert names <= {n for n, _ in _arguments(bringup)} and names <= {n for n, _ in _arguments(sim)}
    assert {n["executable"] for n in _nodes(bringup)} == {"brain_node", "cerebellum_node"}
    assert {n["executable"] for n in _nodes(sim)} == {"sim_node"}
    for required in ("namespace", "use_sim_time", "log_level"):
        assert required in {n for n, _ in _arguments(bringup)}
    assert {"brain_params_file", "brain_backend", "brain_model", "cerebellum_checkpoint"} <= {
        n for n, _ in _arguments(bringup)}


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_every_node_follows_on_node_exit(repo_root: Path, launch_file: str) -> None:
    """``on_node_exit`` (shutdown | respawn | continue) is declared with its choices and reaches every node:
    ``respawn=EqualsSubstitution(on_node_exit, "respawn")`` on the node, and a ``Shutdown`` from an
    ``OnProcessExit`` handler registered only when it is ``shutdown``. (Checked on the syntax tree; the
    behaviour was checked by hand with upstream ``launch``: see the README.)"""
    tree = _tree(repo_root, launch_file)
    args = dict(_arguments(tree))
    assert "on_node_exit" in args
    choices = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "EXIT_CHOICES")
    assert ast.literal_eval(choices) == ("shutdown", "respawn", "continue")
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    default = next(ast.literal_eval(t.elts[1]) for t in table.elts if ast.literal_eval(t.elts[0]) == "on_node_exit")
    assert default == "shutdown"
    compared = {ast.literal_eval(c.args[1]) for c in _calls(tree, "EqualsSubstitution")}
    assert compared == {"respawn", "shutdown"}
    for call in _calls(tree, "Node"):
        assert _kw(call, "respawn") is not None, ast.literal_eval(_kw(call, "executable"))
    assert _calls(tree, "OnProcessExit") and _calls(tree, "Shutdown") and _calls(tree, "RegisterEventHandler")
    if launch_file == "sim.launch.py":
        forwarded = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "FORWARDED")
        assert "on_node_exit" in ast.literal_eval(forwarded)


def test_demo_processes_match_the_launch_files(repo_root: Path) -> None:
    launched = {n["executable"] for f in LAUNCH_FILES for n in _nodes(_tree(repo_root, f))}
    assert set(StackConfig().executables()) == launched
    for exe in launched:
        cmd = StackConfig().command(exe)
        assert Path(cmd[1]) == repo_root / "nodes" / exe
        assert str(repo_root / "config" / NODE_PARAMS_FILES[exe]) in cmd and f"__node:={exe}" in cmd
        declared = set(importlib.import_module(NODE_MODULES[exe]).PARAMETERS) | BUILTIN_PARAMETERS
        assert set(StackConfig().node_params(exe)) <= declared


def test_a_namespace_moves_every_topic(tmp_path) -> None:
    import rclpy

    from tests.ros_helpers import NodeProcess, spin_until

    proc = NodeProcess("robo_sim.node", {"render": False}, tmp_path, extra_args=["-r", "__ns:=/arm1"])
    try:
        with rclpy.init():
            node = rclpy.create_node("ns_probe")

            def topics() -> set[str]:
                return {name for name, _ in node.get_topic_names_and_types()}

            assert spin_until(node, lambda: "/arm1/robo/ee_pose" in topics(), 30.0), (topics(), proc.log())
            time.sleep(0.2)
            names = topics()
            assert {"/arm1/camera/color/pose", "/arm1/robo/ee_target", "/arm1/sim/episode"} <= names, names
            assert "/robo/ee_pose" not in names
            node.destroy_node()
    finally:
        assert proc.stop() == 0, proc.log()


class _FakeConfiguration:
    """A stand-in for ``LaunchConfiguration`` (launch itself is not installable): ``perform(context)`` reads
    the argument from a plain dict."""

    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: dict) -> str:
        return context[self.name]


def _argument_default(tree: ast.Module, name: str) -> object:
    """The default of launch argument ``name`` in the file's ``ARGUMENTS`` table."""
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    return next(ast.literal_eval(t.elts[1]) for t in table.elts if ast.literal_eval(t.elts[0]) == name)


def _launch_function(tree: ast.Module, launch_file: str, name: str):  # noqa: ANN202 - the compiled function
    """The launch file's top-level function ``name``, compiled alone against :class:`_FakeConfiguration`."""
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace: dict = {"LaunchConfiguration": _FakeConfiguration}
    exec(compile(ast.Module(body=[func], type_ignores=[]), launch_file, "exec"), namespace)  # noqa: S102
    return namespace[name]


def _forwarded(tree: ast.Module) -> tuple:
    """sim.launch.py's ``FORWARDED`` arguments."""
    return ast.literal_eval(next(n.value for n in tree.body if isinstance(n, ast.Assign)
                                 and n.targets[0].id == "FORWARDED"))


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_enclave_is_passed_only_when_set(repo_root: Path, launch_file: str) -> None:
    """``enclave`` (SROS2) is declared, empty by default, and every node gets ``--enclave <enclave>`` in its
    ``ros_arguments`` only when it is set: ``enclave_arguments`` is run here with a stand-in for
    ``LaunchConfiguration`` (launch itself is not installable)."""
    tree = _tree(repo_root, launch_file)
    assert _argument_default(tree, "enclave") == ""
    enclave_arguments = _launch_function(tree, launch_file, "enclave_arguments")
    assert enclave_arguments({"enclave": ""}) == []
    assert enclave_arguments({"enclave": " "}) == []
    assert enclave_arguments({"enclave": "/robo_stack"}) == ["--enclave", "/robo_stack"]
    for call in _calls(tree, "Node"):
        ros_args = _kw(call, "ros_arguments")
        text = ast.unparse(ros_args)
        if isinstance(ros_args, ast.Name):  # a list built once for both nodes
            text = next(ast.unparse(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                        and getattr(n.targets[0], "id", None) == ros_args.id)
        assert "enclave_arguments(context)" in text and "--enclave" not in text, text
    if launch_file == "sim.launch.py":
        assert "enclave" in _forwarded(tree)


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_every_node_runs_fast_dds_over_udp_by_default(repo_root: Path, launch_file: str) -> None:
    """``dds_transports`` (FASTDDS_BUILTIN_TRANSPORTS) is declared with UDPv4 by default and reaches every node's
    environment through ``transport_env``; empty leaves Fast DDS's own default."""
    tree = _tree(repo_root, launch_file)
    assert _argument_default(tree, "dds_transports") == "UDPv4"
    transport_env = _launch_function(tree, launch_file, "transport_env")
    assert transport_env({"dds_transports": "UDPv4"}) == {"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}
    assert transport_env({"dds_transports": " "}) == {}
    for call in _calls(tree, "Node"):
        assert ast.unparse(_kw(call, "additional_env")) == "transport_env(context)"
    if launch_file == "sim.launch.py":
        assert "dds_transports" in _forwarded(tree)
