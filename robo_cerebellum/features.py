"""Per-step input features of the policy, shared by training and inference so they cannot drift.

All functions are numpy-only and ROS-free. Positions are normalised with the config's workspace
centre and scale; rotations use the 6D representation; images are resized to ``image_size``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping

import cv2
import numpy as np

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.rotations import quat_to_rot6d

_WORD = re.compile(r"[a-z]+|\d+")


def skill_index(skill: str, cfg: CerebellumConfig) -> int:
    """Return the embedding index of ``skill``.

    Raises:
        ValueError: for a skill the policy does not know.
    """
    try:
        return cfg.skills.index(skill)
    except ValueError:
        raise ValueError(f"unknown skill {skill!r}; the policy knows {list(cfg.skills)}") from None


def code_words(code: str) -> list[str]:
    """The lower-case words and numbers of a pseudo-code line, in order (what the code input hashes)."""
    return _WORD.findall(code.lower())


def code_token_ids(code: str, cfg: CerebellumConfig) -> np.ndarray:
    """Hash the words of a pseudo-code line into ``code_tokens`` bucket ids (0 = padding).

    Hashing (crc32) needs no vocabulary file. With a ``code_vocabulary`` in the config, a word outside
    it is left out (an untrained bucket's embedding is noise to the policy); the keypoints still say
    where the object is.
    """
    words = code_words(code)
    if cfg.code_vocabulary:
        known = set(cfg.code_vocabulary)
        words = [w for w in words if w in known]
    words = words[: cfg.code_tokens]
    ids = np.zeros(cfg.code_tokens, np.int64)
    for i, word in enumerate(words):
        ids[i] = 1 + zlib.crc32(word.encode()) % (cfg.code_buckets - 1)
    return ids


def normalise_position(pos: np.ndarray, cfg: CerebellumConfig) -> np.ndarray:
    """Map base-frame positions (m) to the policy's normalised coordinates."""
    return (np.asarray(pos, np.float64) - np.asarray(cfg.workspace_center)) / cfg.workspace_scale


def keypoint_features(keypoints: Mapping[str, np.ndarray], ee_pos: np.ndarray, cfg: CerebellumConfig) -> np.ndarray:
    """Return the keypoint vector: per role slot, base xyz, xyz relative to the end effector, present flag."""
    out = np.zeros(cfg.keypoint_dim, np.float32)
    for i, role in enumerate(cfg.keypoint_slots):
        point = keypoints.get(role)
        if point is None:
            continue
        point = np.asarray(point, np.float64)
        out[7 * i: 7 * i + 3] = normalise_position(point, cfg)
        out[7 * i + 3: 7 * i + 6] = (point - ee_pos) / cfg.delta_scale / 4.0
        out[7 * i + 6] = 1.0
    return out


def proprio_features(ee_pos: np.ndarray, ee_quat: np.ndarray, gripper_width: float, steps_in_subtask: int,
                     cfg: CerebellumConfig) -> np.ndarray:
    """Return the proprioception vector: normalised position, 6D rotation, gripper width and, when the config
    has ``time_input``, the time in the subtask."""
    out = np.empty(cfg.proprio_dim, np.float32)
    out[0:3] = normalise_position(ee_pos, cfg)
    out[3:9] = quat_to_rot6d(ee_quat)
    out[9] = gripper_width
    if cfg.time_input:
        out[10] = min(steps_in_subtask, 400) / 100.0
    return out


def image_tensor(rgb: np.ndarray, depth: np.ndarray, cfg: CerebellumConfig) -> np.ndarray:
    """Return the ``(4, S, S)`` float32 visual input from an RGB uint8 image and a depth image in metres.

    Raises:
        ValueError: if the images are not HxWx3 / HxW of the same size.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or depth.shape != rgb.shape[:2]:
        raise ValueError(f"expected rgb HxWx3 and depth HxW of the same size, got {rgb.shape} and {depth.shape}")
    size = (cfg.image_size, cfg.image_size)
    small_rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    d = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    small_d = cv2.resize(d, size, interpolation=cv2.INTER_AREA)
    small_d = (small_d - cfg.depth_center) / cfg.depth_scale
    return np.concatenate([small_rgb.transpose(2, 0, 1), small_d[None]], axis=0).astype(np.float32)


def subtask_keypoints(plan_subtasks: list, index: int) -> dict[str, np.ndarray]:
    """Keypoints of subtask ``index`` of a plan as ``{role: xyz}`` (empty past the end)."""
    if not 0 <= index < len(plan_subtasks):
        return {}
    return {kp.name: np.asarray(kp.point, np.float64) for kp in plan_subtasks[index].keypoints}


def steps_in_subtask(subtask_index: np.ndarray) -> np.ndarray:
    """For each step, the number of steps since its subtask began (0 at the first step of a subtask)."""
    out = np.zeros(len(subtask_index), np.int64)
    for t in range(1, len(subtask_index)):
        out[t] = out[t - 1] + 1 if subtask_index[t] == subtask_index[t - 1] else 0
    return out


def sequence_inputs(plan_subtasks: list, subtask_index: np.ndarray, ee_pos: np.ndarray, ee_quat: np.ndarray,
                    gripper_width: np.ndarray, cfg: CerebellumConfig) -> dict[str, np.ndarray]:
    """Vectorised per-step inputs of a whole episode (the same features :class:`CerebellumPolicy` builds).

    Returns ``skill (T,)``, ``code (T, K)``, ``keypoints (T, Dk)``, ``proprio (T, Dp)``.
    """
    n = len(subtask_index)
    skills, codes = np.zeros(n, np.int64), np.zeros((n, cfg.code_tokens), np.int64)
    kps = np.zeros((n, cfg.keypoint_dim), np.float32)
    for index in np.unique(subtask_index):
        rows = subtask_index == index
        sub = plan_subtasks[index] if 0 <= index < len(plan_subtasks) else None
        skills[rows] = skill_index(sub.skill if sub else "done", cfg)
        codes[rows] = code_token_ids(sub.code if sub else "done()", cfg)
        points = subtask_keypoints(plan_subtasks, int(index))
        for t in np.flatnonzero(rows):
            kps[t] = keypoint_features(points, ee_pos[t], cfg)
    proprio = np.zeros((n, cfg.proprio_dim), np.float32)
    proprio[:, 0:3] = normalise_position(ee_pos, cfg)
    proprio[:, 3:9] = quat_to_rot6d(ee_quat)
    proprio[:, 9] = gripper_width
    if cfg.time_input:
        proprio[:, 10] = np.minimum(steps_in_subtask(subtask_index), 400) / 100.0
    return {"skill": skills, "code": codes, "keypoints": kps, "proprio": proprio}
