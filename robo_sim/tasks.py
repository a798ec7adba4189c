"""Task families, language templates with synonyms, seen/unseen splits and geometric success checks.

``make_task(seed, split, family)`` is deterministic: the same arguments give the same scene,
instruction, goals and expert skill sequence.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from robo_common.vocabulary import SPLITS, check_split
from robo_sim import catalog
from robo_sim.scene import (
    MAX_OBJECTS,
    ObjectSpec,
    SceneSpec,
    assign_names,
    block_colors,
    container_colors,
    left_to_right,
    random_block,
    random_container,
    sample_poses,
)
from robo_sim.world import SimWorld

logger = logging.getLogger(__name__)

FAMILIES = ("pick_place", "stack", "rearrange", "push")
PUSH_DISTANCE = 0.10
"""How far (m) the expert pushes an object."""
PUSH_MIN_ALONG = 0.06
PUSH_MAX_LATERAL = 0.035
"""Push success: moved >= 6 cm along the direction with at most 3.5 cm lateral drift."""

# Templates: ``seen`` ones appear in both splits, ``unseen`` ones only in the unseen split.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "pick_place": {
        "seen": (
            "{verb} the {obj} in the {dest}",
            "{verb} the {obj} into the {dest}",
            "{verb} the {obj} inside the {dest}",
        ),
        "unseen": (
            "pick up the {obj} and drop it in the {dest}",
            "the {obj} goes into the {dest}",
            "could you get the {obj} into the {dest}?",
        ),
    },
    "stack": {
        "seen": (
            "stack the {obj} on the {dest}",
            "{verb} the {obj} on top of the {dest}",
            "stack the {obj} on the {dest_short} one",
        ),
        "unseen": (
            "build a tower with the {obj} on top of the {dest}",
            "set the {obj} onto the {dest}",
            "the {obj} should sit on the {dest}",
        ),
    },
    "rearrange_all": {
        "seen": (
            "{verb} all the {color} {blocks} in the {dest}",
            "{verb} every {color} {block} into the {dest}",
        ),
        "unseen": (
            "gather all of the {color} {blocks} in the {dest}",
            "collect each {color} {block} in the {dest}",
        ),
    },
    "rearrange_sort": {
        "seen": (
            "sort the {blocks} into the {containers} of the same colour",
            "{verb} each {block} in the {container} of its colour",
        ),
        "unseen": (
            "match every {block} with the {container} of the same color",
            "sort the {blocks} by colour into the matching {containers}",
        ),
    },
    "push": {
        "seen": ("push the {obj} {dir}", "push the {obj} to the {dir}", "slide the {obj} {dir}"),
        "unseen": ("nudge the {obj} {dir}", "shove the {obj} {dir} a little"),
    },
}
VERBS = {"seen": ("put", "place", "move"), "unseen": ("put", "place", "move", "drop")}
BLOCK_WORDS = ("block", "cube")
DIRECTION_WORDS = {
    "seen": {
        "left": ("left",),
        "right": ("right",),
        "forward": ("forward",),
        "backward": ("backward", "back"),
    },
    "unseen": {
        "left": ("left",),
        "right": ("right",),
        "forward": ("forward", "away from the robot"),
        "backward": ("backward", "towards the robot"),
    },
}


@dataclass
class SkillStep:
    """One step of the expert's decomposition of a task.

    Attributes:
        skill: ``pick``, ``place`` or ``push``.
        arg: Object name (pick/push), target name (place).
        direction: Push direction name.
        slot: Offset (m) of the place point from the target centre, in the target's frame.
    """

    skill: str
    arg: str
    direction: str = ""
    slot: tuple[float, float] = (0.0, 0.0)


@dataclass
class Goal:
    """A geometric goal: ``in`` (obj in container ref), ``on`` (obj on block ref) or ``pushed``."""

    kind: str
    obj: str
    ref: str = ""
    direction: str = ""
    start_xy: tuple[float, float] = (0.0, 0.0)


@dataclass
class Task:
    """A task: scene, instruction, goals and the expert's skill sequence."""

    family: str
    split: str
    seed: int
    instruction: str
    scene: SceneSpec
    goals: list[Goal]
    steps: list[SkillStep] = field(default_factory=list)
    variant: str = ""

    def check_success(self, world: SimWorld) -> bool:
        """True when every goal holds in ``world`` (geometric checks on ground truth)."""
        return all(goal_holds(g, world) for g in self.goals)


# ---------------------------------------------------------------- success checks
def goal_holds(goal: Goal, world: SimWorld) -> bool:
    """Evaluate one goal on the world's ground truth."""
    if goal.kind == "in":
        return in_container(world, goal.obj, goal.ref)
    if goal.kind == "on":
        return on_block(world, goal.obj, goal.ref)
    if goal.kind == "pushed":
        return pushed(world, goal.obj, goal.direction, goal.start_xy)
    raise ValueError(f"unknown goal kind {goal.kind!r}")


def in_container(world: SimWorld, obj: str, container: str) -> bool:
    """Block centre within the container's inner footprint (square or round) and resting on its floor."""
    b, c = world.object_by_name(obj), world.object_by_name(container)
    bp, _ = world.object_pose(b.body_id)
    cp, _ = world.object_pose(c.body_id)
    yaw = world.object_yaw(c.body_id)
    d = bp[:2] - cp[:2]
    local = np.array(
        [math.cos(yaw) * d[0] + math.sin(yaw) * d[1], -math.sin(yaw) * d[0] + math.cos(yaw) * d[1]]
    )
    if c.kind in catalog.ROUND_CONTAINERS:
        inside = bool(np.hypot(*local) <= c.extra["inner"] / 2.0)
    else:
        inside = bool(np.all(np.abs(local) <= c.extra["inner"] / 2.0))
    low = bp[2] <= cp[2] + c.extra["base"] + b.size / 2.0 + 0.015
    return inside and low


def on_block(world: SimWorld, top: str, base: str) -> bool:
    """Top block resting on the base block, centred within half the base's edge."""
    t, b = world.object_by_name(top), world.object_by_name(base)
    tp, _ = world.object_pose(t.body_id)
    bp, _ = world.object_pose(b.body_id)
    dz = tp[2] - bp[2]
    expected = (t.size + b.size) / 2.0
    centred = np.linalg.norm(tp[:2] - bp[:2]) <= b.size / 2.0
    base_down = bp[2] <= b.size / 2.0 + 0.01
    return bool(centred and base_down and expected - 0.01 <= dz <= expected + 0.015)


def pushed(world: SimWorld, obj: str, direction: str, start_xy: tuple[float, float]) -> bool:
    """Object moved >= PUSH_MIN_ALONG along ``direction`` with small lateral drift, still on the table."""
    o = world.object_by_name(obj)
    pos, _ = world.object_pose(o.body_id)
    d = np.array(catalog.DIRECTIONS[direction])
    disp = pos[:2] - np.asarray(start_xy)
    along = float(disp @ d)
    lateral = abs(float(disp @ np.array([-d[1], d[0]])))
    return along >= PUSH_MIN_ALONG and lateral <= PUSH_MAX_LATERAL and pos[2] <= o.size / 2.0 + 0.01


# ---------------------------------------------------------------- generation
def make_task(seed: int, split: str = "seen", family: str | None = None) -> Task:
    """Make a deterministic task from ``seed`` in ``split``; ``family`` None draws one at random."""
    check_split(split)
    if family is None:
        family = FAMILIES[int(np.random.default_rng(seed).integers(len(FAMILIES)))]
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    rng = np.random.default_rng([int(seed), SPLITS.index(split), FAMILIES.index(family)])
    maker = {
        "pick_place": _make_pick_place,
        "stack": _make_stack,
        "rearrange": _make_rearrange,
        "push": _make_push,
    }[family]
    for _ in range(200):
        task = maker(rng, split, seed)
        if task is not None:
            return task
    raise RuntimeError(f"could not sample a {family} scene for seed {seed} ({split})")


def _key_block_colors(rng: np.random.Generator, split: str) -> tuple[str, ...]:
    """Unseen tasks use a held-out block colour for the key object half of the time."""
    if split == "unseen" and rng.random() < 0.5:
        return ("purple", "cyan")
    return block_colors(split)


def _key_container_colors(rng: np.random.Generator, split: str) -> tuple[str, ...]:
    if split == "unseen" and rng.random() < 0.5:
        return ("orange", "purple")
    return container_colors(split)


def _n_objects(rng: np.random.Generator, split: str, low: int) -> int:
    return int(rng.integers(low, MAX_OBJECTS[split] + 1))


def _add_distractors(
    rng: np.random.Generator,
    split: str,
    objects: list[ObjectSpec],
    n: int,
    block_taken: set,
    cont_taken: set,
    forbid_block_colors: tuple[str, ...] = (),
) -> None:
    colors = tuple(c for c in block_colors(split) if c not in forbid_block_colors)
    while len(objects) < n:
        n_cont = sum(not o.is_block for o in objects)
        if n_cont < 2 and rng.random() < 0.3:
            objects.append(random_container(rng, container_colors(split), cont_taken))
        else:
            objects.append(random_block(rng, colors, block_taken))


def _template(rng: np.random.Generator, key: str, split: str) -> str:
    pool = TEMPLATES[key]["seen"]
    if split == "unseen" and rng.random() < 0.6:
        pool = TEMPLATES[key]["unseen"]
    return pool[int(rng.integers(len(pool)))]


def _choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _block_phrase(rng: np.random.Generator, o: ObjectSpec) -> str:
    return o.name.replace("block", _choice(rng, BLOCK_WORDS))


def _container_phrase(rng: np.random.Generator, o: ObjectSpec) -> str:
    return o.name if rng.random() < 0.7 else f"{o.color} container"


def _finish(objects: list[ObjectSpec], rng: np.random.Generator, keep_free=None) -> bool:
    assign_names(objects)
    return sample_poses(objects, rng, keep_free=keep_free)


def _make_pick_place(rng: np.random.Generator, split: str, seed: int) -> Task | None:
    bt, ct = set(), set()
    block = random_block(rng, _key_block_colors(rng, split), bt)
    cont = random_container(rng, _key_container_colors(rng, split), ct)
    objects = [cont, block]
    _add_distractors(rng, split, objects, _n_objects(rng, split, 2), bt, ct)
    if not _finish(objects, rng):
        return None
    text = _template(rng, "pick_place", split).format(
        verb=_choice(rng, VERBS[split]), obj=_block_phrase(rng, block), dest=_container_phrase(rng, cont)
    )
    steps = [SkillStep("pick", block.name), SkillStep("place", cont.name)]
    return Task(
        "pick_place", split, seed, text, SceneSpec(objects), [Goal("in", block.name, cont.name)], steps
    )


def _make_stack(rng: np.random.Generator, split: str, seed: int) -> Task | None:
    bt, ct = set(), set()
    top = random_block(rng, _key_block_colors(rng, split), bt)
    base = random_block(rng, block_colors(split), bt)
    objects = [top, base]
    _add_distractors(rng, split, objects, _n_objects(rng, split, 2), bt, ct)
    if not _finish(objects, rng):
        return None
    text = _template(rng, "stack", split).format(
        verb=_choice(rng, VERBS[split]),
        obj=_block_phrase(rng, top),
        dest=_block_phrase(rng, base),
        dest_short=base.name.replace(" block", ""),
    )
    steps = [SkillStep("pick", top.name), SkillStep("place", base.name)]
    return Task("stack", split, seed, text, SceneSpec(objects), [Goal("on", top.name, base.name)], steps)


def _make_rearrange(rng: np.random.Generator, split: str, seed: int) -> Task | None:
    if rng.random() < 0.5:
        return _make_rearrange_all(rng, split, seed)
    return _make_rearrange_sort(rng, split, seed)


def _slots(n: int) -> list[tuple[float, float]]:
    """Place offsets inside a container for ``n`` blocks (side by side along its x axis)."""
    if n <= 1:
        return [(0.0, 0.0)] * n
    return [(-0.033, 0.0), (0.033, 0.0)] + [(0.0, 0.04)] * (n - 2)


def _make_rearrange_all(rng: np.random.Generator, split: str, seed: int) -> Task | None:
    bt, ct = set(), set()
    color = _choice(rng, _key_block_colors(rng, split))
    blocks = [ObjectSpec("block", color, s) for s in catalog.BLOCK_SIZES]
    bt.update((color, s) for s in catalog.BLOCK_SIZES)
    cont = random_container(rng, _key_container_colors(rng, split), ct)
    objects = [cont, *blocks]
    _add_distractors(rng, split, objects, _n_objects(rng, split, 3), bt, ct, forbid_block_colors=(color,))
    if not _finish(objects, rng):
        return None
    word = _choice(rng, BLOCK_WORDS)
    text = _template(rng, "rearrange_all", split).format(
        verb=_choice(rng, VERBS[split]),
        color=color,
        block=word,
        blocks=word + "s",
        dest=_container_phrase(rng, cont),
    )
    steps, goals = [], []
    for b, slot in zip(left_to_right(blocks), _slots(len(blocks)), strict=True):
        steps += [SkillStep("pick", b.name), SkillStep("place", cont.name, slot=slot)]
        goals.append(Goal("in", b.name, cont.name))
    return Task("rearrange", split, seed, text, SceneSpec(objects), goals, steps, variant="all")


def _make_rearrange_sort(rng: np.random.Generator, split: str, seed: int) -> Task | None:
    shared = tuple(c for c in container_colors(split) if c in block_colors(split))
    ct: set[str] = set()
    c1 = random_container(rng, _key_container_colors(rng, split) if split == "unseen" else shared, ct)
    if c1.color not in shared:
        return None
    c2 = random_container(rng, tuple(c for c in shared if c != c1.color), ct)
    n_blocks = int(rng.integers(2, min(4, MAX_OBJECTS[split] - 2) + 1))
    bt: set = set()
    blocks = [random_block(rng, (c1.color, c2.color), bt) for _ in range(n_blocks)]
    objects = [c1, c2, *blocks]
    if not _finish(objects, rng):
        return None
    word = _choice(rng, BLOCK_WORDS)
    cword = _choice(rng, (c1.kind, "container")) if c1.kind == c2.kind else "container"
    text = _template(rng, "rearrange_sort", split).format(
        verb=_choice(rng, VERBS[split]),
        block=word,
        blocks=word + "s",
        container=cword,
        containers=cword + "s",
    )
    steps, goals = [], []
    slots = {c.name: iter(_slots(sum(b.color == c.color for b in blocks))) for c in (c1, c2)}
    for b in left_to_right(blocks):
        cont = c1 if b.color == c1.color else c2
        steps += [SkillStep("pick", b.name), SkillStep("place", cont.name, slot=next(slots[cont.name]))]
        goals.append(Goal("in", b.name, cont.name))
    if len(steps) < 3:
        return None
    return Task("rearrange", split, seed, text, SceneSpec(objects), goals, steps, variant="sort")


def _make_push(rng: np.random.Generator, split: str, seed: int) -> Task | None:
    bt, ct = set(), set()
    block = random_block(rng, _key_block_colors(rng, split), bt)
    objects = [block]
    _add_distractors(rng, split, objects, _n_objects(rng, split, 1), bt, ct)
    if not _finish(objects, rng):
        return None
    direction = _push_direction(rng, block, objects)
    if direction is None:
        return None
    text = _template(rng, "push", split).format(
        obj=_block_phrase(rng, block), dir=_choice(rng, DIRECTION_WORDS[split][direction])
    )
    goal = Goal("pushed", block.name, direction=direction, start_xy=block.xy)
    return Task(
        "push", split, seed, text, SceneSpec(objects), [goal], [SkillStep("push", block.name, direction)]
    )


def _push_direction(rng: np.random.Generator, block: ObjectSpec, objects: list[ObjectSpec]) -> str | None:
    """A direction whose pushing corridor is free and whose end point stays in reach, or None."""
    names = list(catalog.DIRECTIONS)
    for i in rng.permutation(len(names)):
        d = np.array(catalog.DIRECTIONS[names[i]])
        start = np.array(block.xy)
        end = start + d * PUSH_DISTANCE
        behind = start - d * 0.09
        if not (
            0.3 <= min(end[0], behind[0])
            and max(end[0], behind[0]) <= 0.72
            and max(abs(end[1]), abs(behind[1])) <= 0.3
        ):
            continue
        if all(_segment_clear(behind, end + d * 0.04, o) for o in objects if o is not block):
            return names[i]
    return None


def _segment_clear(a: np.ndarray, b: np.ndarray, o: ObjectSpec, width: float = 0.06) -> bool:
    c = np.array(o.xy)
    ab = b - a
    t = float(np.clip((c - a) @ ab / (ab @ ab), 0.0, 1.0))
    return float(np.linalg.norm(a + t * ab - c)) >= o.radius + width
