"""The stack on the simulated Franka Panda: bringup.launch.py plus sim_node.

    ros2 launch robo_stack sim.launch.py
    ros2 topic pub --once /robo/instruction std_msgs/msg/String "{data: 'put the blue block into the pink container'}"
    ros2 topic echo /robo/execution_status      # the cerebellum's progress; /sim/episode: the simulator's verdict
    ros2 service call /sim/reset robo_stack/srv/ResetSim "{seed: 3, split: seen, family: stack}"

sim_node is the clock source (it publishes /clock and runs on wall time); the brain and the
cerebellum run on simulated time (``use_sim_time`` defaults to true here). ``on_node_exit`` applies to
sim_node as to the two nodes of bringup.launch.py (default: any node that exits ends the launch), and so
does ``enclave`` (SROS2; empty by default: no ``--enclave``; see docs/security.md).
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "robo_stack"

ARGUMENTS = [
    ("sim_params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "sim.yaml"]),
     "Parameter file of sim_node."),
    ("seed", "100001", "Seed of the task loaded at start-up (then use /sim/reset); default: the demo's scene."),
    ("split", "seen", "Split of the start-up task: seen or unseen."),
    ("family", "pick_place", "Family of the start-up task: pick_place, stack, rearrange, push (empty: from the seed)."),
    ("render", "true", "Publish camera images (false: state only)."),
    ("lockstep_period_s", "0.05", "Synchronous simulation: sim_node waits for the cerebellum's step at every multiple "
                                  "of this much simulated time (its policy period); 0.0: free-running real time."),
    ("use_sim_time", "true", "Brain and cerebellum follow the simulator's /clock."),
    ("log_level", "info", "Log level of all nodes: debug, info, warn, error."),
    ("namespace", "", "Namespace of all nodes and topics."),
    ("on_node_exit", "shutdown", "When a node exits: shutdown (end the launch), respawn (restart that node) or "
                                 "continue (keep the others running)."),
    ("dds_transports", "UDPv4", "Fast DDS built-in transports of the nodes (FASTDDS_BUILTIN_TRANSPORTS). "
                                "UDPv4 by default: with shared memory a publisher can stall for ~1 s when a "
                                "subscriber's process freezes (docs/robot.md); empty: Fast DDS's own "
                                "default (SHM + UDPv4); other RMWs ignore it."),
    ("enclave", "", "SROS2 security enclave of all nodes, e.g. /robo_stack (needs ROS_SECURITY_KEYSTORE and "
                    "ROS_SECURITY_ENABLE=true; see docs/security.md); empty: no --enclave."),
]
FORWARDED = ("use_sim_time", "log_level", "namespace", "on_node_exit", "enclave", "dds_transports")
"""Arguments passed on to bringup.launch.py explicitly (sim's own defaults win over bringup's). Its other
arguments (brain_model, brain_backend, ...) are listed by ``--show-args`` and reach it from the command line
too: an included launch file sees every launch configuration set so far."""


EXIT_CHOICES = ("shutdown", "respawn", "continue")
"""Values of ``on_node_exit`` (as in bringup.launch.py)."""
RESPAWN_DELAY_S = 2.0
"""Seconds before sim_node is restarted (``on_node_exit:=respawn``)."""


def _shutdown_reason(event, context) -> list | None:  # noqa: ANN001 - launch ProcessExited event, LaunchContext
    """Log that sim_node exited with which code, then end the launch (nothing when already shutting down)."""
    if getattr(context, "is_shutdown", False):
        return None
    reason = f"{event.action.name} exited with code {event.returncode} (on_node_exit:=shutdown)"
    return [LogInfo(msg=f"robo_stack: {reason}; ending the launch"), Shutdown(reason=reason)]


def transport_env(context) -> dict[str, str]:  # noqa: ANN001 - launch LaunchContext
    """``{"FASTDDS_BUILTIN_TRANSPORTS": <dds_transports>}`` when the argument is set, else nothing."""
    transports = LaunchConfiguration("dds_transports").perform(context).strip()
    return {"FASTDDS_BUILTIN_TRANSPORTS": transports} if transports else {}


def enclave_arguments(context) -> list[str]:  # noqa: ANN001 - launch LaunchContext
    """``["--enclave", <enclave>]`` when the ``enclave`` argument is set, else nothing."""
    enclave = LaunchConfiguration("enclave").perform(context).strip()
    return ["--enclave", enclave] if enclave else []


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, include the bringup and add sim_node (and what happens when it exits)."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text,
                                  **({"choices": EXIT_CHOICES} if name == "on_node_exit" else {}))
            for name, default, text in ARGUMENTS]
    cfg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    bringup = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(PACKAGE), "launch",
                                                            "bringup.launch.py"])),
        launch_arguments={name: cfg[name] for name in FORWARDED}.items(),
    )
    return LaunchDescription([*args, OpaqueFunction(function=launch_sim), bringup])


def launch_sim(context) -> list:  # noqa: ANN001 - launch LaunchContext
    """sim_node and what happens when it exits (an ``OpaqueFunction``: ``--enclave`` only when set)."""
    cfg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    sim = Node(
        package=PACKAGE, executable="sim_node", name="sim_node", namespace=cfg["namespace"], output="screen",
        respawn=EqualsSubstitution(cfg["on_node_exit"], "respawn"), respawn_delay=RESPAWN_DELAY_S,
        parameters=[cfg["sim_params_file"], {
            "seed": ParameterValue(cfg["seed"], value_type=int),
            "split": ParameterValue(cfg["split"], value_type=str),
            "family": ParameterValue(cfg["family"], value_type=str),
            "render": ParameterValue(cfg["render"], value_type=bool),
            "lockstep_period_s": ParameterValue(cfg["lockstep_period_s"], value_type=float),
            "use_sim_time": False,
        }],
        ros_arguments=["--log-level", cfg["log_level"], *enclave_arguments(context)],
        additional_env=transport_env(context),
    )
    on_exit = RegisterEventHandler(OnProcessExit(target_action=sim, on_exit=_shutdown_reason),
                                   condition=IfCondition(EqualsSubstitution(cfg["on_node_exit"], "shutdown")))
    return [sim, on_exit]
