"""Bring up the robo_stack brain and cerebellum against a robot (or the simulator).

    ros2 launch robo_stack bringup.launch.py
    ros2 launch robo_stack bringup.launch.py brain_backend:=openai brain_model:=qwen2.5-vl \
        brain_base_url:=http://gpu-box:8000/v1 namespace:=arm1 log_level:=debug

Both nodes read their parameters from ``config/brain.yaml`` and ``config/cerebellum.yaml``
(override with ``brain_params_file`` / ``cerebellum_params_file``); the arguments below override
single parameters on top, each with its declared type (``ParameterValue(..., value_type=...)``:
``brain_model:=7`` stays a string, ``control_rate_hz:=100`` becomes 100.0, ``''`` stays ``''``).
All topic names are relative, so ``namespace`` moves every topic of both nodes
(``/arm1/robo/plan``); remap the robot's own topics with the ``*_topic`` arguments.

A node that exits (a crash, an error at start-up) ends the whole launch by default
(``on_node_exit:=shutdown``): a brain without a cerebellum plans for an arm nobody drives, a
cerebellum without a brain waits for plans forever, and either way the terminal should say so.
``on_node_exit:=respawn`` restarts the node that exited instead (after ``RESPAWN_DELAY_S``), and
``continue`` keeps the others running (the old behaviour).

``enclave:=/robo_stack`` starts both nodes with ``--ros-args --enclave /robo_stack`` (SROS2: with
``ROS_SECURITY_KEYSTORE`` set and ``ROS_SECURITY_ENABLE=true``, DDS authenticates, encrypts and checks
the enclave's permissions); empty (the default) passes no ``--enclave``. See docs/security.md.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "robo_stack"

ARGUMENTS = [
    ("brain_params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "brain.yaml"]),
     "Parameter file of brain_node."),
    ("cerebellum_params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "cerebellum.yaml"]),
     "Parameter file of cerebellum_node."),
    ("brain_backend", "transformers", "Brain model back-end: transformers, openai or scripted."),
    ("brain_model", "", "Brain model: a transformers checkpoint folder (empty: the shipped embedded model), "
                        "a model name (openai) or an answers file (scripted)."),
    ("brain_base_url", "http://127.0.0.1:8000/v1", "Endpoint root of the openai back-end."),
    ("brain_device", "cpu", "Torch device of the transformers back-end (cpu, cuda, cuda:1...)."),
    ("cerebellum_checkpoint", PathJoinSubstitution([FindPackageShare(PACKAGE), "models", "cerebellum"]),
     "Cerebellum checkpoint folder (model.safetensors + config.json)."),
    ("control_rate_hz", "200.0", "Rate of the cerebellum's control loop and of /robo/ee_target (Hz)."),
    ("use_sim_time", "false", "Use /clock (true with the simulator or a bag replay)."),
    ("log_level", "info", "Log level of both nodes: debug, info, warn, error."),
    ("namespace", "", "Namespace of both nodes and of all their topics."),
    ("on_node_exit", "shutdown", "When a node exits: shutdown (end the launch), respawn (restart that node) or "
                                 "continue (keep the others running)."),
    ("start_brain", "true", "Start brain_node (false: plans come from elsewhere)."),
    ("dds_transports", "UDPv4", "Fast DDS built-in transports of the nodes (FASTDDS_BUILTIN_TRANSPORTS). "
                                "UDPv4 by default: with shared memory a publisher can stall for ~1 s when a "
                                "subscriber's process freezes (docs/robot.md); empty: Fast DDS's own "
                                "default (SHM + UDPv4); other RMWs ignore it."),
    ("enclave", "", "SROS2 security enclave of both nodes, e.g. /robo_stack (needs ROS_SECURITY_KEYSTORE and "
                    "ROS_SECURITY_ENABLE=true; see docs/security.md); empty: no --enclave."),
    ("color_topic", "camera/color/image_raw", "The robot's colour image topic (sensor_msgs/Image, rgb8)."),
    ("depth_topic", "camera/depth/image_raw", "The robot's depth image topic (sensor_msgs/Image, 32FC1 metres)."),
    ("camera_info_topic", "camera/color/camera_info", "The colour camera's CameraInfo topic."),
    ("ee_pose_topic", "robo/ee_pose", "The robot's measured end-effector pose (geometry_msgs/PoseStamped)."),
    ("ee_target_topic", "robo/ee_target", "Where the cerebellum sends end-effector targets."),
    ("gripper_command_topic", "robo/gripper_command", "Where the cerebellum sends gripper commands (0..1)."),
]


EXIT_CHOICES = ("shutdown", "respawn", "continue")
"""Values of ``on_node_exit``."""
RESPAWN_DELAY_S = 2.0
"""Seconds before a node that exited is restarted (``on_node_exit:=respawn``; launch takes a plain float here)."""


def _shutdown_reason(event, context) -> list | None:  # noqa: ANN001 - launch ProcessExited event, LaunchContext
    """Log which node exited with which code, then end the launch with that as the reason (nothing when the
    launch is already shutting down, e.g. after Ctrl-C)."""
    if getattr(context, "is_shutdown", False):
        return None
    reason = f"{event.action.name} exited with code {event.returncode} (on_node_exit:=shutdown)"
    return [LogInfo(msg=f"robo_stack: {reason}; ending the launch"), Shutdown(reason=reason)]


def exit_policy(node: Node, on_node_exit: LaunchConfiguration) -> RegisterEventHandler:
    """End the launch when ``node`` exits, if ``on_node_exit`` is ``shutdown`` (``respawn`` is the node's own
    ``respawn=EqualsSubstitution(on_node_exit, "respawn")``)."""
    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_shutdown_reason),
                                condition=IfCondition(EqualsSubstitution(on_node_exit, "shutdown")))


def transport_env(context) -> dict[str, str]:  # noqa: ANN001 - launch LaunchContext
    """``{"FASTDDS_BUILTIN_TRANSPORTS": <dds_transports>}`` when the argument is set, else nothing."""
    transports = LaunchConfiguration("dds_transports").perform(context).strip()
    return {"FASTDDS_BUILTIN_TRANSPORTS": transports} if transports else {}


def enclave_arguments(context) -> list[str]:  # noqa: ANN001 - launch LaunchContext
    """``["--enclave", <enclave>]`` when the ``enclave`` argument is set, else nothing (an empty ``--enclave``
    would be an error)."""
    enclave = LaunchConfiguration("enclave").perform(context).strip()
    return ["--enclave", enclave] if enclave else []


def generate_launch_description() -> LaunchDescription:
    """Declare every argument, then (once the arguments are known) the two nodes and what happens when one
    exits."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text,
                                  **({"choices": EXIT_CHOICES} if name == "on_node_exit" else {}))
            for name, default, text in ARGUMENTS]
    return LaunchDescription([*args, OpaqueFunction(function=launch_nodes)])


def launch_nodes(context) -> list:  # noqa: ANN001 - launch LaunchContext
    """The two nodes and their exit policies (an ``OpaqueFunction``: ``--enclave`` is passed only when set)."""
    cfg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    ros_arguments = ["--log-level", cfg["log_level"], *enclave_arguments(context)]
    respawn = EqualsSubstitution(cfg["on_node_exit"], "respawn")
    sim_time = ParameterValue(cfg["use_sim_time"], value_type=bool)
    sensors = [
        ("camera/color/image_raw", cfg["color_topic"]),
        ("camera/depth/image_raw", cfg["depth_topic"]),
        ("camera/color/camera_info", cfg["camera_info_topic"]),
        ("robo/ee_pose", cfg["ee_pose_topic"]),
    ]
    brain = Node(
        package=PACKAGE, executable="brain_node", name="brain_node", namespace=cfg["namespace"], output="screen",
        condition=IfCondition(cfg["start_brain"]), respawn=respawn, respawn_delay=RESPAWN_DELAY_S,
        parameters=[cfg["brain_params_file"], {
            "backend": ParameterValue(cfg["brain_backend"], value_type=str),
            "model_path": ParameterValue(cfg["brain_model"], value_type=str),
            "base_url": ParameterValue(cfg["brain_base_url"], value_type=str),
            "device": ParameterValue(cfg["brain_device"], value_type=str),
            "use_sim_time": sim_time,
        }],
        remappings=sensors,
        ros_arguments=ros_arguments,
        additional_env=transport_env(context),
    )
    cerebellum = Node(
        package=PACKAGE, executable="cerebellum_node", name="cerebellum_node", namespace=cfg["namespace"],
        output="screen", respawn=respawn, respawn_delay=RESPAWN_DELAY_S,
        parameters=[cfg["cerebellum_params_file"], {
            "checkpoint": ParameterValue(cfg["cerebellum_checkpoint"], value_type=str),
            "control_rate_hz": ParameterValue(cfg["control_rate_hz"], value_type=float),
            "use_sim_time": sim_time,
        }],
        remappings=[*sensors, ("robo/ee_target", cfg["ee_target_topic"]),
                    ("robo/gripper_command", cfg["gripper_command_topic"])],
        ros_arguments=ros_arguments,
        additional_env=transport_env(context),
    )
    policies = [exit_policy(node, cfg["on_node_exit"]) for node in (brain, cerebellum)]
    return [brain, cerebellum, *policies]
