"""Pixel keypoints to 3D points in the robot base frame, with sanity checks.

A keypoint ``(u, v)`` (pixel column, row) is lifted with the registered depth image
(float32 metres of z-depth along the optical axis, ``H x W``), the pinhole intrinsics ``K``
and ``T_base_camera`` (pose of the optical frame, z forward / x right / y down, in the base
frame). Depth is the median of the valid depths in a small window around the pixel, so one
missing or noisy depth pixel does not move the point. Every check that fails raises
:class:`KeypointError` with a message fit to be shown to a user or fed back to the model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from robo_common.camera import CameraModel
from robo_common.plan_types import KeypointData

logger = logging.getLogger(__name__)


class KeypointError(ValueError):
    """A keypoint cannot be lifted to a safe 3D point (outside the image, no depth, outside the workspace...)."""


@dataclass(frozen=True)
class WorkspaceBox:
    """Axis-aligned box in the base frame (metres) that every keypoint must lie in."""

    x: tuple[float, float] = (0.15, 0.85)
    y: tuple[float, float] = (-0.5, 0.5)
    z: tuple[float, float] = (-0.03, 0.45)

    def __post_init__(self) -> None:
        for name in ("x", "y", "z"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"WorkspaceBox.{name} must be finite (low, high) with low < high, got {(lo, hi)}")

    @classmethod
    def from_flat(cls, values: list[float] | tuple[float, ...]) -> WorkspaceBox:
        """Build from ``[x_min, x_max, y_min, y_max, z_min, z_max]`` (the node parameter's layout)."""
        if len(values) != 6:
            raise ValueError(f"workspace box needs 6 numbers [x_min, x_max, y_min, y_max, z_min, z_max], got {values}")
        v = [float(x) for x in values]
        return cls((v[0], v[1]), (v[2], v[3]), (v[4], v[5]))

    def contains(self, point: np.ndarray) -> bool:
        """True when ``point`` (x, y, z) lies inside the box."""
        return all(lo <= float(c) <= hi for c, (lo, hi) in zip(point, (self.x, self.y, self.z), strict=True))


@dataclass(frozen=True)
class KeypointConfig:
    """Parameters of :func:`pixel_to_base`.

    Attributes:
        window: Half size of the depth median window (2 -> 5x5 pixels).
        min_depth: Smallest valid depth (m).
        max_depth: Largest valid depth (m).
        workspace: Box every keypoint must lie in.
        table_z: Height of the support surface in the base frame (m).
        surface_tolerance: How far below ``table_z`` a point may be (depth noise) (m).
    """

    window: int = 2
    min_depth: float = 0.05
    max_depth: float = 3.0
    workspace: WorkspaceBox = field(default_factory=WorkspaceBox)
    table_z: float = 0.0
    surface_tolerance: float = 0.02

    def __post_init__(self) -> None:
        if not 0 <= self.window <= 10:
            raise ValueError(f"KeypointConfig.window must be in [0, 10], got {self.window!r}")
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f"KeypointConfig depth range must satisfy 0 < min_depth < max_depth, got "
                             f"{self.min_depth!r}, {self.max_depth!r}")
        if not (math.isfinite(self.surface_tolerance) and self.surface_tolerance >= 0):
            raise ValueError(f"KeypointConfig.surface_tolerance must be >= 0, got {self.surface_tolerance!r}")


def window_depth(depth: np.ndarray, u: float, v: float, config: KeypointConfig = KeypointConfig()) -> float:
    """Median of the valid depths in the window around pixel ``(u, v)``.

    Raises:
        KeypointError: outside the image or no valid depth in the window.
    """
    if depth.ndim != 2:
        raise KeypointError(f"depth image must be HxW, got shape {depth.shape}")
    h, w = depth.shape
    if not (math.isfinite(u) and math.isfinite(v)):
        raise KeypointError(f"pixel ({u}, {v}) is not finite")
    col, row = int(round(u)), int(round(v))
    if not (0 <= col < w and 0 <= row < h):
        raise KeypointError(f"pixel (u={u:g}, v={v:g}) is outside the {w}x{h} image")
    r = config.window
    patch = depth[max(row - r, 0):row + r + 1, max(col - r, 0):col + r + 1].astype(np.float64)
    valid = patch[np.isfinite(patch) & (patch >= config.min_depth) & (patch <= config.max_depth)]
    if valid.size == 0:
        raise KeypointError(f"no valid depth near pixel (u={u:g}, v={v:g}) (range {config.min_depth}-"
                            f"{config.max_depth} m)")
    return float(np.median(valid))


def _check_workspace(point: np.ndarray, config: KeypointConfig) -> np.ndarray:
    """``point`` if it lies in ``config.workspace``; else :class:`KeypointError` with its coordinates."""
    if not config.workspace.contains(point):
        ws = config.workspace
        raise KeypointError(f"point ({point[0]:.3f}, {point[1]:.3f}, {point[2]:.3f}) m is outside the workspace "
                            f"x {ws.x} y {ws.y} z {ws.z}")
    return point


def pixel_to_base(u: float, v: float, depth: np.ndarray, camera: CameraModel,
                  config: KeypointConfig = KeypointConfig()) -> np.ndarray:
    """Lift pixel ``(u, v)`` to a 3D point in the base frame, checking image, depth, workspace and surface.

    Raises:
        KeypointError: with what failed and the numbers that made it fail.
    """
    if depth.shape != (camera.height, camera.width):
        raise KeypointError(f"depth image is {depth.shape[1]}x{depth.shape[0]} but the camera is "
                            f"{camera.width}x{camera.height}")
    z = window_depth(depth, u, v, config)
    point = camera.deproject(u, v, z)
    if point[2] < config.table_z - config.surface_tolerance:
        raise KeypointError(f"point z={point[2]:.3f} m is below the table (z={config.table_z} m, tolerance "
                            f"{config.surface_tolerance} m)")
    return _check_workspace(point, config)


def pixel_on_plane(u: float, v: float, height: float, camera: CameraModel,
                   config: KeypointConfig = KeypointConfig()) -> np.ndarray:
    """Where the camera ray through pixel ``(u, v)`` meets the plane ``height`` m above the table.

    For keypoints that name a point in free space rather than a surface the camera sees (the pusher's
    path behind and past an object): lifting such a pixel with the depth image would give the table,
    or the object's edge, under it.

    Raises:
        KeypointError: the ray does not reach the plane in front of the camera, or the point is outside
            the workspace.
    """
    origin, far = camera.deproject(u, v, 0.0), camera.deproject(u, v, 1.0)
    z0 = config.table_z + height
    dz = far[2] - origin[2]
    if abs(dz) < 1e-9 or (z0 - origin[2]) / dz <= 0:
        raise KeypointError(f"the ray through pixel ({u:.1f}, {v:.1f}) does not meet the plane z={z0:.3f} m "
                            "in front of the camera")
    point = origin + (far - origin) * (z0 - origin[2]) / dz
    return _check_workspace(point, config)


def make_locator(depth: np.ndarray, camera: CameraModel, config: KeypointConfig = KeypointConfig()):
    """Return ``locate(name, u, v) -> KeypointData`` for :func:`robo_common.plan_language.plan_from_model_output`."""

    def locate(name: str, u: float, v: float) -> KeypointData:
        point = pixel_to_base(u, v, depth, camera, config)
        return KeypointData(name, tuple(float(c) for c in point), float(u), float(v), 1.0)

    return locate
