"""The stack on the simulated Franka Panda: bringup.launch.py plus sim_node.

    ros2 launch robo_stack sim.launch.py
    ros2 topic pub --once /robo/instruction std_msgs/msg/String "{data: 'put the red block in the green bowl'}"
    ros2 service call /sim/reset robo_stack/srv/ResetSim "{seed: 3, split: seen, family: stack}"

sim_node is the clock source (it publishes /clock and runs on wall time); the brain and the
cerebellum run on simulated time (``use_sim_time`` defaults to true here).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "robo_stack"

ARGUMENTS = [
    ("sim_params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "sim.yaml"]),
     "Parameter file of sim_node."),
    ("seed", "0", "Seed of the task loaded at start-up (then use /sim/reset)."),
    ("split", "seen", "Split of the start-up task: seen or unseen."),
    ("family", "", "Family of the start-up task: pick_place, stack, rearrange, push (empty: from the seed)."),
    ("render", "true", "Publish camera images (false: state only)."),
    ("lockstep_period_s", "0.05", "Synchronous simulation: sim_node waits for the cerebellum's step at every multiple "
                                  "of this much simulated time (its policy period); 0.0: free-running real time."),
    ("use_sim_time", "true", "Brain and cerebellum follow the simulator's /clock."),
    ("log_level", "info", "Log level of all nodes: debug, info, warn, error."),
    ("namespace", "", "Namespace of all nodes and topics."),
]
FORWARDED = ("use_sim_time", "log_level", "namespace")
"""Arguments passed on to bringup.launch.py explicitly (sim's own defaults win over bringup's). Its other
arguments (brain_model, brain_backend, ...) are listed by ``--show-args`` and reach it from the command line
too: an included launch file sees every launch configuration set so far."""


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments, include the bringup and add sim_node."""
    args = [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
    cfg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    bringup = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(PACKAGE), "launch",
                                                            "bringup.launch.py"])),
        launch_arguments={name: cfg[name] for name in FORWARDED}.items(),
    )
    sim = Node(
        package=PACKAGE, executable="sim_node", name="sim_node", namespace=cfg["namespace"], output="screen",
        parameters=[cfg["sim_params_file"], {
            "seed": ParameterValue(cfg["seed"], value_type=int),
            "split": ParameterValue(cfg["split"], value_type=str),
            "family": ParameterValue(cfg["family"], value_type=str),
            "render": ParameterValue(cfg["render"], value_type=bool),
            "lockstep_period_s": ParameterValue(cfg["lockstep_period_s"], value_type=float),
            "use_sim_time": False,
        }],
        ros_arguments=["--log-level", cfg["log_level"]],
    )
    return LaunchDescription([*args, sim, bringup])
