"""``brain_node``'s parameters and what they configure, without ROS.

:data:`PARAMETERS` names every parameter with its default and description (``config/brain.yaml``
holds the same defaults); :func:`configs_from_parameters` turns the values into the planner and
back-end configs; :func:`camera_pose_from_parameter` and :func:`checked_instruction` check the
fallback camera pose and an incoming instruction. The node (:mod:`robo_brain.node`) only declares,
reads and reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from robo_brain.backends import BackendConfig, GenerationSettings
from robo_brain.checks import CheckConfig
from robo_brain.keypoints import KeypointConfig, WorkspaceBox
from robo_brain.planner import PlannerConfig, sanitize_instruction
from robo_common.geometry import pose_to_matrix
from robo_common.resources import resource_path

DEFAULT_MODEL = "brain_lm"
"""The shipped brain under ``models/`` that an empty ``model_path`` loads (brain v2; ``brain_embedded`` is v1)."""
MAX_INSTRUCTION_BYTES = 4096
"""Longest instruction message read at all (longer ones are rejected before sanitising)."""

PARAMETERS: dict[str, tuple[object, str]] = {
    "backend": ("transformers", "Model back-end: transformers, openai or scripted."),
    "model_path": ("", "Checkpoint folder (transformers), model name (openai) or answers file (scripted); empty with "
                   "the transformers back-end: the shipped brain v2 (models/brain_lm: SmolLM2-135M + LoRA on the "
                   "scene listing); models/brain_embedded is the first embedded model (ViT + GPT-2)."),
    "device": ("cpu", "Torch device of the transformers back-end (cpu, cuda, cuda:1...)."),
    "dtype": ("auto", "Torch dtype of the transformers back-end: auto, float32, float16, bfloat16."),
    "torch_threads": (1, "CPU threads of the transformers back-end's torch (0: torch's default, one per core). 1 "
                         "beside sim_node and cerebellum_node on a 2-core machine: with 2, over DDS, the first plan "
                         "took 2.0 s p50 instead of 0.96 s (threads waiting on each other)."),
    "base_url": ("http://127.0.0.1:8000/v1", "Endpoint root of the openai back-end."),
    "api_key_env": ("OPENAI_API_KEY", "Environment variable holding the openai back-end's API key."),
    "request_timeout_s": (60.0, "Timeout of one openai request (s)."),
    "request_retries": (2, "Retries of a failed openai request (exponential backoff)."),
    "max_new_tokens": (256, "Most tokens generated per model answer."),
    "do_sample": (False, "Sample instead of greedy decoding."),
    "temperature": (0.7, "Sampling temperature (with do_sample)."),
    "max_instruction_chars": (500, "Longest accepted instruction (characters)."),
    "parse_retries": (1, "Extra model attempts after an unusable answer, with the error fed back."),
    "max_corrections": (3, "Revisions allowed per plan before it is reported failed."),
    "plan_frame_wait_s": (1.0, "An instruction is planned on colour and depth frames that arrived after it (the "
                               "scene as it is now, not as it was before a reset or a move); when none arrives "
                               "within this long (s), on the latest frames, with a warning; 0: the latest at once."),
    "correction_settle_s": (0.5, "A correction waits for a camera frame taken this long after the failure (s), so "
                                 "that a falling object has landed before the brain looks whether the step's goal "
                                 "holds; 0: the latest frame at once."),
    "correction": ("auto", "How corrections are made: prompt (the model writes the remaining steps from the "
                   "failure, plan so far and expert findings), replan (re-plan on the current image and resume "
                   "after the finished steps), auto (prompt for chat models and a brain v2 adapter trained on "
                   "corrections, replan for plan-only models such as the first embedded brain)."),
    "workspace": ([0.15, 0.85, -0.5, 0.5, -0.03, 0.45], "Keypoint box [x_min, x_max, y_min, y_max, z_min, z_max] "
                  "in the base frame (m)."),
    "table_z": (0.0, "Height of the table top in the base frame (m)."),
    "depth_window": (2, "Half size of the depth median window around a keypoint (pixels)."),
    "keypoint_snap_radius": (6, "Snap grasp pixels onto the top face of the object under them within this many "
                                "pixels (depth only) before lifting them to 3D; 0: use the model's pixels."),
    "camera_pose": ([0.0], "Fallback camera extrinsics [x, y, z, qx, qy, qz, qw] of the optical frame in the "
                    "base frame, used until /camera/color/pose arrives; [0.0] for none."),
    "ground_names": (True, "Refuse a plan that names an object or target the brain does not see in the camera image "
                     "(scene listing of robo_brain/perception.py); the refusal names it on brain_status."),
    "verify_goals": (True, "When the cerebellum reports the current plan SUCCEEDED, look at every place and push "
                     "goal in a frame taken correction_settle_s later: steps whose goals do not hold are redone as a "
                     "revision (it counts as a correction), else the task is reported succeeded (or failed past "
                     "max_corrections) on brain_status and the action; false: the cerebellum's SUCCEEDED ends it."),
    "verify_instruction": (True, "With verify_goals, once a completed plan's goals hold: plan the instruction again "
                           "on that frame and check the goals of the objects no revision of the plan moved (an "
                           "object the first plan left out); one that does not hold is redone as a revision."),
    "publish_empty_plan_on_failure": (True, "Publish an empty plan when planning fails, so the old plan stops."),
}


def configs_from_parameters(p: Mapping[str, object]) -> tuple[PlannerConfig, BackendConfig]:
    """The planner and back-end configs of ``brain_node``'s parameter values (``ValueError`` naming a bad one).

    An empty ``model_path`` with the transformers back-end is the shipped default, :data:`DEFAULT_MODEL`.
    """
    model_path = str(p["model_path"])
    if not model_path and p["backend"] == "transformers":
        model_path = str(resource_path("models", DEFAULT_MODEL))
    backend = BackendConfig(backend=str(p["backend"]), model_path=model_path, device=str(p["device"]),
                            dtype=str(p["dtype"]), base_url=str(p["base_url"]), api_key_env=str(p["api_key_env"]),
                            timeout_s=float(p["request_timeout_s"]), retries=int(p["request_retries"]),
                            threads=int(p["torch_threads"]))
    keypoints = KeypointConfig(window=int(p["depth_window"]), table_z=float(p["table_z"]),
                               workspace=WorkspaceBox.from_flat(list(p["workspace"])))
    gen = GenerationSettings(max_new_tokens=int(p["max_new_tokens"]), do_sample=bool(p["do_sample"]),
                             temperature=float(p["temperature"]))
    planner = PlannerConfig(max_instruction_chars=int(p["max_instruction_chars"]),
                            parse_retries=int(p["parse_retries"]), max_corrections=int(p["max_corrections"]),
                            generation=gen, checks=CheckConfig(keypoints=keypoints),
                            correction=str(p["correction"]), snap_radius=int(p["keypoint_snap_radius"]),
                            ground=bool(p["ground_names"]), recheck_instruction=bool(p["verify_instruction"]))
    return planner, backend


def camera_pose_from_parameter(values: Sequence[float]) -> np.ndarray | None:
    """``T_base_camera`` (4x4) of the ``camera_pose`` parameter ``[x, y, z, qx, qy, qz, qw]``; None for ``[0.0]``.

    Raises:
        ValueError: any other value that is not a finite pose with a usable quaternion.
    """
    values = [float(v) for v in values]
    if len(values) == 7 and all(math.isfinite(v) for v in values) and np.linalg.norm(values[3:]) > 0.5:
        return pose_to_matrix(np.array(values[:3]), np.array(values[3:]))
    if values != [0.0]:
        raise ValueError(f"camera_pose parameter must be [x, y, z, qx, qy, qz, qw], got {values}")
    return None


def checked_instruction(text: str, max_chars: int) -> str:
    """The instruction as the planner takes it (:func:`~robo_brain.planner.sanitize_instruction`).

    Raises:
        ValueError: too long or unusable, with the reason and that the current plan is kept.
    """
    if len(text) > MAX_INSTRUCTION_BYTES:
        raise ValueError(f"{len(text)} characters; at most {MAX_INSTRUCTION_BYTES}")
    if "\ufffd" in text:  # what rclpy makes of bytes that are not UTF-8
        raise ValueError("the instruction is not valid UTF-8 (undecodable bytes); the current plan is kept")
    try:
        return sanitize_instruction(text, max_chars)
    except ValueError as exc:
        raise ValueError(f"{exc}; the current plan is kept") from exc
