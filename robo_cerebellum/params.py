"""``cerebellum_node``'s parameters and what they configure, without ROS.

:data:`PARAMETERS` names every parameter with its default and description (``config/cerebellum.yaml``
holds the same defaults); :func:`settings_from_parameters` turns the values into the typed configs of
the envelope, the state gate, the monitor and the checks. The node only declares, reads and reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from robo_cerebellum.monitor import MonitorConfig
from robo_cerebellum.safety import SafetyConfig
from robo_cerebellum.scene_checks import GroundingConfig, SceneCheckConfig
from robo_cerebellum.state_gate import StateGateConfig
from robo_common.resources import resource_path

DEFAULT_CHECKPOINT = str(resource_path("models", "cerebellum"))

PARAMETERS: dict[str, tuple[object, str]] = {
    "checkpoint": (DEFAULT_CHECKPOINT, "Cerebellum checkpoint folder (model.safetensors + config.json)."),
    "control_rate_hz": (200.0, "Rate of the control loop and of /robo/ee_target (Hz)."),
    "torch_threads": (1, "Torch CPU threads of the policy (1 is fastest at batch 1)."),
    "workspace_min": ([0.2, -0.45, 0.005], "Lower corner of the allowed end-effector box (m, base frame)."),
    "workspace_max": ([0.8, 0.45, 0.6], "Upper corner of the allowed end-effector box (m, base frame)."),
    "max_speed": (0.6, "Largest commanded end-effector speed (m/s)."),
    "max_angular_speed": (3.0, "Largest commanded end-effector angular speed (rad/s)."),
    "max_subtasks": (32, "Refuse a plan with more subtasks than this."),
    "state_timeout_s": (0.08, "Hold when no robot state arrived for this long (s)."),
    "state_margin_m": (0.3, "Refuse a measured end-effector pose farther than this outside the workspace box (m): "
                            "it is not a state of this robot (a bogus publisher, wrong units)."),
    "state_jump_m": (0.05, "A measured pose this far (m, plus 2 m/s x the time since the last one) from the last one "
                           "is a jump (robot reset or re-homed): the plan stops and the arm holds at the new pose."),
    "image_timeout_s": (0.5, "Hold when no camera image arrived for this long (s); 0 disables."),
    "tracking_error_m": (0.05, "Tracking error that, sustained, counts as a failure (m)."),
    "subtask_timeout_s": (30.0, "Longest time one subtask may take (s)."),
    "failure_threshold": (1.0, "Learned failure probability that, sustained, counts as a failure (1.0: the learned "
                                "head is off, only the explicit checks run)."),
    "control_thread_priority": (50, "SCHED_FIFO priority of the control thread (1-99, as ros2_control's "
                                    "thread_priority); 0: normal scheduling. Needs CAP_SYS_NICE or an rtprio limit; "
                                    "without it the node warns and runs at normal priority."),
    "push_check": (True, "After a push, look at the next depth frame for the object where the push should have left "
                         "it; nothing there is a no_progress failure. Needs camera_info and the camera pose topic."),
    "keypoint_check": (True, "When a pick or push starts, check in the colour and depth frames that its object stands "
                             "at its grasp keypoint (ahead of push_start): bare table there, or an object whose colour "
                             "contradicts the colour word of the object's name, is a grasp_missed (no_progress) "
                             "failure before the arm moves. Needs camera_info and the camera pose topic."),
    "status_period_s": (0.05, "A policy step's /robo/execution_status goes out at most this often (s) while "
                              "nothing but progress changes (a new state, subtask or detail goes out at once); on "
                              "the state stamps' grid under use_sim_time, where a lock-stepped sim_node waits on "
                              "it. A policy at the control rate (200 Hz) would otherwise publish 200 a second."),
    "policy_image_hz": (0.0, "Rate at which camera frames reach the policy (Hz, by their stamps); 0: the rate of the "
                             "checkpoint's training images (config.json camera_hz; every frame for a checkpoint "
                             "without one). The scene checks see every frame."),
    "interpolation_s": (0.0, "Blend a new policy target in from the previous one over this long (s); 0: at once "
                             "(as in the demonstrations). A smoother command costs up to this much lag."),
}


@dataclass(frozen=True)
class NodeSettings:
    """Everything ``cerebellum_node`` configures from its parameters."""

    checkpoint: str
    control_rate_hz: float
    control_thread_priority: int
    torch_threads: int
    safety: SafetyConfig
    gate: StateGateConfig
    monitor: MonitorConfig
    scene: SceneCheckConfig | None
    grounding: GroundingConfig | None
    max_subtasks: int
    interpolation_s: float
    status_period_s: float
    policy_image_hz: float


def settings_from_parameters(par: Mapping[str, object]) -> NodeSettings:
    """Typed settings from the parameter values.

    Raises:
        ValueError: a value out of range (the config that rejects it names it).
    """
    box = tuple(par["workspace_min"]), tuple(par["workspace_max"])
    rate = float(par["control_rate_hz"])
    if not 1.0 <= rate <= 2000.0:
        raise ValueError(f"control_rate_hz must be in [1, 2000], got {rate!r}")
    if not float(par["policy_image_hz"]) >= 0.0:
        raise ValueError(f"policy_image_hz must be >= 0 Hz, got {par['policy_image_hz']!r}")
    if int(par["max_subtasks"]) < 1 or int(par["torch_threads"]) < 1:
        raise ValueError(f"max_subtasks and torch_threads must be >= 1, got {par['max_subtasks']!r}, "
                         f"{par['torch_threads']!r}")
    return NodeSettings(
        checkpoint=str(par["checkpoint"]),
        control_rate_hz=rate,
        control_thread_priority=int(par["control_thread_priority"]),
        torch_threads=int(par["torch_threads"]),
        safety=SafetyConfig(*box, float(par["max_speed"]), float(par["max_angular_speed"]),
                            float(par["state_timeout_s"]), float(par["image_timeout_s"])),
        gate=StateGateConfig(*box, float(par["state_margin_m"]), float(par["state_jump_m"])),
        monitor=MonitorConfig(tracking_error_m=float(par["tracking_error_m"]),
                              subtask_timeout_s=float(par["subtask_timeout_s"]),
                              failure_threshold=float(par["failure_threshold"])),
        scene=SceneCheckConfig() if par["push_check"] else None,
        grounding=GroundingConfig() if par["keypoint_check"] else None,
        max_subtasks=int(par["max_subtasks"]),
        interpolation_s=max(0.0, float(par["interpolation_s"])),
        status_period_s=max(0.0, float(par["status_period_s"])),
        policy_image_hz=float(par["policy_image_hz"]),
    )
