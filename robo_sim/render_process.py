"""RGB-D rendering in a child process, so a 25 ms TinyRenderer frame never stalls physics.

The child owns its own pybullet DIRECT client with the same robot, table and scene as the
simulating world. For each frame the parent sends a :class:`Snapshot` (joint positions and
object poses); the child copies it into its client, renders, and sends the images back.
PyBullet holds the GIL while rendering, so a thread would not help; a process uses the
second core.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from dataclasses import dataclass
from multiprocessing.connection import Connection

import numpy as np
import pybullet as p

from robo_sim.scene import SceneSpec, build_scene
from robo_sim.world import SimWorld, WorldConfig

LOG = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """The kinematic state needed to draw a frame.

    Attributes:
        stamp: Simulated time of the state (s); returned with the frame.
        joints: Positions of the movable joints, in ``SimWorld.movable_joints`` order.
        objects: ``(position, quaternion xyzw)`` of every object, in creation order.
    """

    stamp: float
    joints: np.ndarray
    objects: list[tuple[np.ndarray, np.ndarray]]


def take_snapshot(world: SimWorld) -> Snapshot:
    """Read the snapshot of ``world`` at its current simulated time."""
    _, q, _, _ = world.joint_state()
    objects = [world.object_pose(body_id) for body_id in world.objects]
    return Snapshot(world.sim_time, q, objects)


def apply_snapshot(world: SimWorld, snap: Snapshot) -> None:
    """Copy a snapshot into ``world`` (kinematically, no physics step)."""
    for joint, q in zip(world.movable_joints, snap.joints, strict=True):
        p.resetJointState(world.robot, joint, float(q), 0.0, physicsClientId=world.cid)
    bodies = list(world.objects)
    if len(bodies) != len(snap.objects):
        raise ValueError(f"snapshot has {len(snap.objects)} objects, render scene has {len(bodies)}")
    for body_id, (pos, quat) in zip(bodies, snap.objects, strict=True):
        p.resetBasePositionAndOrientation(body_id, pos.tolist(), quat.tolist(), physicsClientId=world.cid)


def _child(conn: Connection, config: WorldConfig) -> None:
    world = SimWorld(config)
    try:
        while True:
            kind, payload = conn.recv()
            if kind == "close":
                return
            if kind == "scene":
                build_scene(world, payload, settle_s=0.0)
                conn.send(("scene", None))
            elif kind == "render":
                try:
                    apply_snapshot(world, payload)
                    rgb, depth = world.render()
                    conn.send(("frame", (payload.stamp, rgb, depth)))
                except Exception as exc:  # noqa: BLE001 - reported to the parent, child stays up
                    conn.send(("error", f"{type(exc).__name__}: {exc}"))
    except (EOFError, KeyboardInterrupt):
        return
    finally:
        world.close()


class RenderProcess:
    """A child process that renders frames of a world on request, one at a time."""

    def __init__(self, config: WorldConfig) -> None:
        """Start the child with a world built from ``config`` (same camera and robot)."""
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child, args=(child_conn, config), daemon=True, name="robo_sim_render")
        self._proc.start()
        child_conn.close()
        self.busy = False

    def load_scene(self, scene: SceneSpec, timeout_s: float = 30.0) -> None:
        """Replace the child's objects with ``scene`` (blocks until done; drops a pending frame)."""
        self._drain()
        self._conn.send(("scene", scene))
        self._expect("scene", timeout_s)

    def request(self, snap: Snapshot) -> bool:
        """Ask for a frame of ``snap``; returns False (and does nothing) while a frame is pending."""
        if self.busy:
            return False
        self._conn.send(("render", snap))
        self.busy = True
        return True

    def poll(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        """Return ``(stamp, rgb, depth)`` of a finished frame, or None if none is ready.

        Raises:
            RuntimeError: if the child failed to render the frame or died.
        """
        if not self.busy:
            return None
        if not self._proc.is_alive():
            raise RuntimeError("render process died")
        if not self._conn.poll():
            return None
        self.busy = False
        kind, payload = self._conn.recv()
        if kind == "error":
            raise RuntimeError(f"render failed: {payload}")
        return payload

    def _drain(self) -> None:
        if self.busy:
            self._expect("frame", 30.0)
            self.busy = False

    def _expect(self, kind: str, timeout_s: float) -> None:
        if not self._conn.poll(timeout_s):
            raise RuntimeError(f"render process did not answer {kind!r} within {timeout_s} s")
        got, payload = self._conn.recv()
        if got == "error":
            raise RuntimeError(f"render process failed: {payload}")
        if got != kind:
            raise RuntimeError(f"render process answered {got!r}, expected {kind!r}")

    def close(self) -> None:
        """Stop the child process."""
        try:
            self._conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()
