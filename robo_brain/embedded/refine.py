"""Geometric refinement of grasp keypoints: snap a predicted pixel onto the top face of the object under it.

An expert check on the depth image only (no simulator ground truth): around the predicted
pixel, find the nearest pixel standing at least ``min_height`` above the table, grow the surface
it belongs to (4-neighbours whose height differs by less than ``step``), keep the part within
``top_band`` of that surface's highest point (the top face) and return its centroid. When nothing
stands out of the table within ``radius`` pixels, the pixel is returned unchanged. Blocks rest on
the table, so their top face is the highest surface around them; the centroid of its pixels is
the projection of its centre, the pixel the model is trained to predict.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from robo_brain.keypoints import KeypointConfig, make_locator
from robo_common.camera import CameraModel
from robo_common.plan_types import KeypointData

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapConfig:
    """Parameters of :func:`snap_to_top_face` (pixels and metres).

    Attributes:
        radius: Search radius around the predicted pixel (0 disables snapping).
        min_height: Height above the table of an object pixel.
        step: Largest height difference between neighbouring pixels of one surface.
        top_band: Pixels within this of the surface's highest point form the top face.
        table_z: Height of the table in the base frame.
        names: Keypoint names that are snapped.
    """

    radius: int = 6
    min_height: float = 0.015
    step: float = 0.006
    top_band: float = 0.006
    table_z: float = 0.0
    names: tuple[str, ...] = ("grasp",)

    def __post_init__(self) -> None:
        if not 0 <= self.radius <= 32:
            raise ValueError(f"SnapConfig.radius must be in [0, 32], got {self.radius!r}")
        for name in ("min_height", "step", "top_band"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SnapConfig.{name} must be > 0, got {getattr(self, name)!r}")


def height_map(depth: np.ndarray, camera: CameraModel, rows: slice, cols: slice) -> np.ndarray:
    """Base-frame height (z, m) of every pixel in ``depth[rows, cols]`` (NaN where depth is invalid)."""
    d = depth[rows, cols].astype(np.float64)
    vv, uu = np.mgrid[rows, cols]
    x = (uu - camera.K[0, 2]) / camera.K[0, 0] * d
    y = (vv - camera.K[1, 2]) / camera.K[1, 1] * d
    R, t = camera.T_base_camera[:3, :3], camera.T_base_camera[:3, 3]
    z = R[2, 0] * x + R[2, 1] * y + R[2, 2] * d + t[2]
    return np.where(np.isfinite(d) & (d > 0), z, np.nan)


def _grow(z: np.ndarray, seed: tuple[int, int], step: float) -> list[tuple[int, int]]:
    """Pixels 4-connected to ``seed`` through height steps smaller than ``step``."""
    h, w = z.shape
    seen = {seed}
    queue = deque([seed])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < h and 0 <= nc < w and (nr, nc) not in seen and abs(z[nr, nc] - z[r, c]) < step:
                seen.add((nr, nc))
                queue.append((nr, nc))
    return list(seen)


def snap_to_top_face(u: float, v: float, depth: np.ndarray, camera: CameraModel,
                     config: SnapConfig = SnapConfig()) -> tuple[float, float]:
    """Return the top-face centre pixel of the object nearest to ``(u, v)``, or ``(u, v)`` if there is none."""
    h, w = depth.shape
    if config.radius == 0 or not (0 <= round(u) < w and 0 <= round(v) < h):
        return u, v
    span = 3 * config.radius
    r0, c0 = max(0, int(round(v)) - span), max(0, int(round(u)) - span)
    z = height_map(depth, camera, slice(r0, min(h, int(round(v)) + span + 1)),
                   slice(c0, min(w, int(round(u)) + span + 1)))
    rows, cols = np.nonzero(np.nan_to_num(z, nan=-1.0) - config.table_z >= config.min_height)
    if rows.size == 0:
        return u, v
    dist = np.hypot(rows + r0 - v, cols + c0 - u)
    best = int(np.argmin(dist))
    if dist[best] > config.radius:
        return u, v
    region = _grow(np.nan_to_num(z, nan=-1.0), (int(rows[best]), int(cols[best])), config.step)
    heights = np.array([z[r, c] for r, c in region])
    top = [p for p, zz in zip(region, heights, strict=True) if zz >= heights.max() - config.top_band]
    pr, pc = np.mean(np.array(top, float), axis=0)
    return float(pc + c0), float(pr + r0)


def make_snapping_locator(depth: np.ndarray, camera: CameraModel, keypoints: KeypointConfig | None = None,
                          snap: SnapConfig = SnapConfig()):
    """Like :func:`robo_brain.keypoints.make_locator`, with ``snap.names`` keypoints snapped first."""
    base = make_locator(depth, camera, keypoints or KeypointConfig())

    def locate(name: str, u: float, v: float) -> KeypointData:
        if name in snap.names:
            u, v = snap_to_top_face(u, v, depth, camera, snap)
        return base(name, u, v)

    return locate
