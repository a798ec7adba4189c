"""Procedural scenes: object specs, non-overlapping pose sampling, naming, and building into a world.

A :class:`SceneSpec` is plain data (colours, sizes, poses) so it can be logged, compared for
determinism and rebuilt in any :class:`~robo_sim.world.SimWorld`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from robo_common.vocabulary import (
    HELDOUT_BLOCK_COLORS,
    HELDOUT_CONTAINER_COLORS,
    SEEN_BLOCK_COLORS,
    SEEN_CONTAINER_COLORS,
    check_split,
)
from robo_sim import catalog
from robo_sim.world import SimWorld, WorldConfig

logger = logging.getLogger(__name__)

MAX_OBJECTS = {"seen": 5, "unseen": 6}
"""Largest scene per split: 6-object scenes only occur in ``unseen``."""

CLEARANCE = 0.035
"""Free gap (m) kept between object footprints, room for the open fingers."""


def block_colors(split: str) -> tuple[str, ...]:
    """Colours blocks may have in ``split``."""
    check_split(split)
    return SEEN_BLOCK_COLORS if split == "seen" else SEEN_BLOCK_COLORS + HELDOUT_BLOCK_COLORS


def container_colors(split: str) -> tuple[str, ...]:
    """Colours containers may have in ``split``."""
    check_split(split)
    return SEEN_CONTAINER_COLORS if split == "seen" else SEEN_CONTAINER_COLORS + HELDOUT_CONTAINER_COLORS


@dataclass
class ObjectSpec:
    """One object of a scene.

    Attributes:
        kind: ``block``, ``bowl`` or ``tray``.
        color: Colour name (key of :data:`robo_common.vocabulary.COLORS`).
        size_name: ``small``/``large`` for blocks, the kind for containers.
        xy: Centre position on the table (m, base frame).
        yaw: Rotation about z (rad).
        name: Unambiguous name used in plans and instructions.
    """

    kind: str
    color: str
    size_name: str = ""
    xy: tuple[float, float] = (0.0, 0.0)
    yaw: float = 0.0
    name: str = ""

    @property
    def is_block(self) -> bool:
        """True for blocks."""
        return self.kind == "block"

    @property
    def size(self) -> float:
        """Block edge or container outer side (m)."""
        if self.is_block:
            return catalog.BLOCK_SIZES[self.size_name]
        dims = catalog.CONTAINER_KINDS[self.kind]
        return dims["inner"] + 2 * dims["wall"]

    @property
    def radius(self) -> float:
        """Radius of the footprint's bounding circle (m)."""
        return self.size / math.sqrt(2.0)


@dataclass
class SceneSpec:
    """All objects of a scene, in creation order."""

    objects: list[ObjectSpec] = field(default_factory=list)

    def by_name(self, name: str) -> ObjectSpec:
        """Return the object named ``name``."""
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(f"no object named {name!r} in scene")

    def blocks(self) -> list[ObjectSpec]:
        """The blocks of the scene."""
        return [o for o in self.objects if o.is_block]


def assign_names(objects: list[ObjectSpec]) -> None:
    """Name objects unambiguously: ``red block``, or ``small red block`` when two red blocks exist."""
    for o in objects:
        if o.is_block:
            same = [b for b in objects if b.is_block and b.color == o.color]
            o.name = f"{o.size_name} {o.color} block" if len(same) > 1 else f"{o.color} block"
        else:
            o.name = f"{o.color} {o.kind}"
    names = [o.name for o in objects]
    if len(set(names)) != len(names):
        raise ValueError(f"ambiguous object names in scene: {names}")


def image_column(xy: tuple[float, float], eye: tuple[float, float, float] | None = None,
                 target: tuple[float, float, float] | None = None) -> float:
    """Horizontal image coordinate (up to the camera's focal length and centre) of a table point at
    ``xy``, seen by a pinhole camera at ``eye`` looking at ``target`` with z up (default: the
    simulator's fixed camera, :class:`~robo_sim.world.WorldConfig`). Larger is further right."""
    if eye is None or target is None:
        cfg = WorldConfig()
        eye, target = eye or cfg.camera_eye, target or cfg.camera_target
    e = np.asarray(eye, float)
    forward = np.asarray(target, float) - e
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    d = np.array([xy[0], xy[1], 0.0]) - e
    return float(d @ right / (d @ forward))


def left_to_right(objects: list[ObjectSpec]) -> list[ObjectSpec]:
    """``objects`` in the order the camera sees them from left to right (by :func:`image_column`)."""
    return sorted(objects, key=lambda o: image_column(o.xy))


def sample_poses(
    objects: list[ObjectSpec],
    rng: np.random.Generator,
    tries: int = 400,
    keep_free: list[tuple[np.ndarray, float]] | None = None,
) -> bool:
    """Give every object a non-overlapping random pose in the workspace; False when it failed.

    ``keep_free`` lists extra discs ``(centre, radius)`` that must stay empty.
    """
    placed: list[tuple[np.ndarray, float]] = list(keep_free or [])
    for o in objects:
        for _ in range(tries):
            xy = _sample_xy(o, rng)
            if all(np.linalg.norm(xy - c) >= r + o.radius + CLEARANCE for c, r in placed):
                break
        else:
            return False
        o.xy = (float(xy[0]), float(xy[1]))
        o.yaw = float(rng.uniform(-math.pi, math.pi))
        placed.append((xy, o.radius))
    return True


def _sample_xy(o: ObjectSpec, rng: np.random.Generator) -> np.ndarray:
    margin = 0.0 if o.is_block else 0.03
    x = rng.uniform(catalog.WORKSPACE_X[0] + margin, catalog.WORKSPACE_X[1] - margin)
    y = rng.uniform(catalog.WORKSPACE_Y[0] + margin, catalog.WORKSPACE_Y[1] - margin)
    return np.array([x, y])


def random_block(
    rng: np.random.Generator, colors: tuple[str, ...], taken: set[tuple[str, str]]
) -> ObjectSpec:
    """A block whose (colour, size) is not in ``taken``; adds it to ``taken``."""
    free = [(c, s) for c in colors for s in catalog.BLOCK_SIZES if (c, s) not in taken]
    color, size = free[int(rng.integers(len(free)))]
    taken.add((color, size))
    return ObjectSpec("block", color, size)


def random_container(rng: np.random.Generator, colors: tuple[str, ...], taken: set[str]) -> ObjectSpec:
    """A container of a colour not in ``taken`` (container colours are unique in a scene)."""
    free = [c for c in colors if c not in taken]
    color = free[int(rng.integers(len(free)))]
    taken.add(color)
    kind = ("bowl", "tray")[int(rng.integers(2))]
    return ObjectSpec(kind, color, kind)


def build_scene(world: SimWorld, spec: SceneSpec, settle_s: float = 0.2) -> dict[str, int]:
    """Create the scene's objects in ``world`` (removing old ones) and return name -> body id."""
    world.remove_all_objects()
    ids: dict[str, int] = {}
    for o in spec.objects:
        if o.is_block:
            ids[o.name] = world.add_block(o.color, o.size, (o.xy[0], o.xy[1], o.size / 2), o.yaw, name=o.name)
        else:
            ids[o.name] = world.add_container(o.color, o.kind, o.xy, o.yaw, name=o.name)
    world.settle(settle_s)
    return ids
