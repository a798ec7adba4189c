"""What is on the table: a scene listing from one RGB-D image (ROS-free; numpy and OpenCV).

The language model of the brain v2 (:mod:`robo_brain.lm`) plans from this listing instead of raw
pixels, and every name in its plan must be one of the listing's (:func:`ground_names`). The
listing is measured against the simulator's truth by ``robo-stack eval brain`` (names) and its
keypoints replace the pixels a model would otherwise have to write.

How it works, per image:

1. Every pixel is lifted to the robot base frame with the depth image and the camera model.
   Pixels inside the table region (:attr:`PerceptionConfig.region_x`, ``region_y``) and between
   ``min_height`` and ``max_height`` above the table are object pixels (the arm at rest, the table
   and the background are not).
2. Each object pixel gets a basic colour term (:mod:`robo_common.colours`: hue for chromatic
   pixels, lightness for achromatic ones); connected regions of one term are objects.
3. An object's footprint and height say its kind: a footprint wider than ``container_extent`` is
   a container, a bowl when its wall is high (top above ``bowl_top_z``), else a tray; the rest are
   blocks, ``large`` when the top face is above ``large_block_top_z``.
4. Names follow the project's convention (``robo_common.vocabulary``): ``red block``, or
   ``small red block`` / ``large red block`` when two blocks share a colour; ``blue bowl``.
   Objects are listed from left to right as the camera sees them.

Keypoints: a block's is its top-face centre, a container's the centre of its floor (the
conventions of the plans the cerebellum learned from).

Limits: a block resting in a container of its own colour merges with it; a block half hidden by
another object may be missed; white objects and the grey arm are told apart by height only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from robo_common.camera import CameraModel
from robo_common.colours import CHROMATIC, TERMS, achromatic_term, pixel_terms, srgb_to_lab

KINDS = ("block", "bowl", "tray")
PUSH_GAP_M = 0.025
"""The push convention: the pusher starts this far behind the object's near face ..."""
PUSH_Z_M = 0.013
"""... at this height above the table ..."""
PUSH_DISTANCE_M = 0.10
"""... and moves this far (plus the gap) along the push direction."""
DIRECTION_VECTORS: dict[str, tuple[float, float]] = {
    "forward": (1.0, 0.0), "backward": (-1.0, 0.0), "left": (0.0, 1.0), "right": (0.0, -1.0)}
"""Push directions in the base frame: forward is away from the robot (+x), left is the robot's left (+y)."""
CONTAINER_FLOOR_M = 0.008
"""Height of a container's floor above the table (its base plate)."""


@dataclass(frozen=True)
class PerceptionConfig:
    """Thresholds of :func:`perceive` (metres in the base frame unless said otherwise).

    Attributes:
        region_x: Table region, x range (points outside are not objects).
        region_y: Table region, y range.
        min_height: Lowest object point above the table (depth noise below).
        max_height: Highest object point (the arm above is ignored).
        min_pixels: Smallest object, in pixels.
        min_chroma: Chroma below which a pixel is achromatic (white / grey / black).
        container_extent: Footprint diagonal above which an object is a container.
        bowl_top_z: A container whose top is above this is a bowl (high wall), else a tray.
        large_block_top_z: A block whose top face is above this is ``large``.
    """

    region_x: tuple[float, float] = (0.22, 0.78)
    region_y: tuple[float, float] = (-0.4, 0.4)
    min_height: float = 0.006
    max_height: float = 0.12
    min_pixels: int = 4
    min_chroma: float = 15.0
    container_extent: float = 0.09
    bowl_top_z: float = 0.0355
    large_block_top_z: float = 0.045

    def __post_init__(self) -> None:
        for name in ("region_x", "region_y"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"PerceptionConfig.{name} must be (low, high) with low < high, got {(lo, hi)}")
        if not 0 <= self.min_height < self.max_height:
            raise ValueError(f"PerceptionConfig needs 0 <= min_height < max_height, got {self.min_height!r}, "
                             f"{self.max_height!r}")
        if self.min_pixels < 1:
            raise ValueError(f"PerceptionConfig.min_pixels must be >= 1, got {self.min_pixels!r}")


@dataclass(frozen=True)
class SeenObject:
    """One object of the scene listing.

    Attributes:
        name: Its name (``small red block``, ``blue bowl``).
        kind: ``block``, ``bowl`` or ``tray``.
        colour: Basic colour term.
        size: ``small`` or ``large`` for blocks, ``''`` for containers.
        centre: Centre of its footprint at half its height (m, base frame).
        top_z: Height of its top (m).
        extent: Footprint diagonal (m).
        u: Keypoint pixel column (block: top-face centre; container: floor centre).
        v: Keypoint pixel row.
        pixels: How many pixels it covers.
    """

    name: str
    kind: str
    colour: str
    size: str
    centre: tuple[float, float, float]
    top_z: float
    extent: float
    u: float
    v: float
    pixels: int

    @property
    def is_block(self) -> bool:
        """Whether it can be picked (a block)."""
        return self.kind == "block"

    def keypoint_point(self) -> tuple[float, float, float]:
        """The 3D point of its keypoint: top-face centre of a block, floor centre of a container."""
        x, y, _ = self.centre
        return (x, y, self.top_z) if self.is_block else (x, y, CONTAINER_FLOOR_M)


def perceive(rgb: np.ndarray, depth: np.ndarray, camera: CameraModel,
             config: PerceptionConfig | None = None) -> list[SeenObject]:
    """The objects on the table, named and ordered left to right (see the module docstring).

    Raises:
        ValueError: images that do not match each other or the camera.
    """
    cfg = config or PerceptionConfig()
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"perceive: colour image must be RGB uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    if depth.shape != rgb.shape[:2] or depth.shape != (camera.height, camera.width):
        raise ValueError(f"perceive: depth {depth.shape} and colour {rgb.shape[:2]} must match the camera "
                         f"{camera.height}x{camera.width}")
    h, w = depth.shape
    vv, uu = np.mgrid[0:h, 0:w]
    d = depth.astype(np.float64).ravel()
    valid = np.isfinite(d) & (d > 0)
    pts = camera.deproject_many(uu.ravel(), vv.ravel(), np.where(valid, d, 1.0)).reshape(h, w, 3)
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    mask = (valid.reshape(h, w) & (x >= cfg.region_x[0]) & (x <= cfg.region_x[1]) & (y >= cfg.region_y[0])
            & (y <= cfg.region_y[1]) & (z >= cfg.min_height) & (z <= cfg.max_height))
    terms = pixel_terms(rgb, cfg.min_chroma).reshape(rgb.shape[:2])
    n_chromatic = len(CHROMATIC)
    objects = []
    # Chromatic terms segment one by one; the achromatic ones as one class (a white object's shaded
    # faces read grey), named by the lightness of its lit pixels.
    for t in [*range(n_chromatic), -1]:
        sel = (mask & ((terms == t) if t >= 0 else (terms >= n_chromatic))).astype(np.uint8)
        if not sel.any():
            continue
        n, labels = cv2.connectedComponents(sel, connectivity=8)
        for k in range(1, n):
            comp = labels == k
            if comp.sum() >= cfg.min_pixels:
                term = TERMS[t] if t >= 0 else _achromatic_term(rgb[comp])
                objects.append(_describe(term, pts[comp], int(comp.sum()), camera, cfg))
    return _name(sorted(objects, key=lambda o: o.u))


def _achromatic_term(pixels: np.ndarray) -> str:
    """White, grey or black by the lightness of the lit (upper quartile) pixels of an achromatic object."""
    return achromatic_term(float(np.percentile(srgb_to_lab(pixels.reshape(-1, 3))[:, 0], 75)))


def _describe(term: str, points: np.ndarray, pixels: int, camera: CameraModel, cfg: PerceptionConfig) -> SeenObject:
    top = float(np.percentile(points[:, 2], 95))
    lo, hi = np.percentile(points[:, :2], 5, axis=0), np.percentile(points[:, :2], 95, axis=0)
    extent = float(np.hypot(*(hi - lo)))
    if extent > cfg.container_extent:
        kind, size = ("bowl" if top > cfg.bowl_top_z else "tray"), ""
        cx, cy = (lo + hi) / 2.0
    else:
        kind, size = "block", ("large" if top > cfg.large_block_top_z else "small")
        face = points[points[:, 2] >= top - 0.008]
        cx, cy = np.median(face[:, :2], axis=0)
    obj = SeenObject("", kind, term, size, (float(cx), float(cy), top / 2.0), top, extent, 0.0, 0.0, pixels)
    u, v = camera.project(np.array(obj.keypoint_point()))
    return SeenObject("", kind, term, size, obj.centre, top, extent, u, v, pixels)


def _name(objects: list[SeenObject]) -> list[SeenObject]:
    out = []
    for o in objects:
        if o.is_block:
            same = [b for b in objects if b.is_block and b.colour == o.colour]
            name = f"{o.size} {o.colour} block" if len(same) > 1 else f"{o.colour} block"
        else:
            name = f"{o.colour} {o.kind}"
        taken = sum(1 for p in out if p.name == name or p.name.startswith(name + " "))
        out.append(SeenObject(name if not taken else f"{name} {taken + 1}", o.kind, o.colour, o.size, o.centre,
                              o.top_z, o.extent, o.u, o.v, o.pixels))
    return out


def listing_text(objects: list[SeenObject]) -> str:
    """The listing as the model reads it: names from left to right, comma separated (``none`` if empty)."""
    return ", ".join(o.name for o in objects) or "none"


def push_pixels(obj: SeenObject, direction: str,
                camera: CameraModel) -> tuple[tuple[float, float], tuple[float, float]]:
    """Pixels of the push keypoints (start behind ``obj``, end past it) for ``direction``.

    Raises:
        ValueError: unknown direction.
    """
    if direction not in DIRECTION_VECTORS:
        raise ValueError(f"unknown push direction {direction!r}; known: {', '.join(DIRECTION_VECTORS)}")
    dx, dy = DIRECTION_VECTORS[direction]
    half = obj.top_z / 2.0
    x, y, _ = obj.centre
    start = np.array([x - dx * (half + PUSH_GAP_M), y - dy * (half + PUSH_GAP_M), PUSH_Z_M])
    end = start + np.array([dx, dy, 0.0]) * (PUSH_DISTANCE_M + PUSH_GAP_M)
    return camera.project(start), camera.project(end)


__all__ = ["DIRECTION_VECTORS", "KINDS", "PerceptionConfig", "SeenObject", "listing_text", "perceive",
           "push_pixels"]
