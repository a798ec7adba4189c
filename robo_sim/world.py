"""PyBullet world: a Franka Panda on a table, blocks, containers (square trays, round bowls) and a fixed RGB-D camera.

All positions exposed by :class:`SimWorld` are in the Panda base frame ``panda_link0``, which is
the PyBullet world origin; the table top is the plane ``z = 0``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pybullet as p
import pybullet_data

from robo_common.constants import BASE_FRAME
from robo_common.geometry import quat_angle, slerp
from robo_common.rates import seconds_to_steps
from robo_common.vocabulary import COLORS
from robo_sim import catalog

logger = logging.getLogger(__name__)

ARM_JOINTS = tuple(range(7))
FINGER_JOINTS = (9, 10)
TCP_LINK = 11  # panda_grasptarget, between the fingertips
HAND_LINK = 8
ARM_FORCES = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
REST_POSE = (0.0, -0.6, 0.0, -2.3, 0.0, 1.7, 0.785)
FINGER_MAX = 0.04


@dataclass
class WorldConfig:
    """Configuration of a :class:`SimWorld`.

    Attributes:
        control_period: Control period in seconds (1/20 s gives 12 physics substeps).
        physics_hz: Physics rate in Hz.
        image_width: Camera image width in pixels.
        image_height: Camera image height in pixels.
        fov_deg: Vertical field of view of the camera.
        near: Near clipping plane (m).
        far: Far clipping plane (m).
        camera_eye: Camera position in the base frame.
        camera_target: Point the camera looks at.
        max_step_translation: Largest move of the commanded EE target per control step (m).
        max_step_rotation: Largest rotation of the commanded EE target per control step (rad).
        gripper_force: Force of each finger motor (N).
    """

    control_period: float = 1.0 / 20.0
    physics_hz: float = 240.0
    image_width: int = 128
    image_height: int = 128
    fov_deg: float = 55.0
    near: float = 0.05
    far: float = 3.0
    camera_eye: tuple[float, float, float] = (1.15, 0.0, 0.75)
    camera_target: tuple[float, float, float] = (0.45, 0.0, 0.0)
    max_step_translation: float = 0.04
    max_step_rotation: float = 0.35
    gripper_force: float = 60.0

    def __post_init__(self) -> None:
        for name in (
            "control_period",
            "physics_hz",
            "fov_deg",
            "near",
            "max_step_translation",
            "max_step_rotation",
            "gripper_force",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"WorldConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.image_width < 8 or self.image_height < 8:
            raise ValueError(
                f"WorldConfig image size must be >= 8, got {self.image_width}x{self.image_height}"
            )
        if not self.far > self.near:
            raise ValueError(f"WorldConfig.far ({self.far}) must exceed near ({self.near})")
        if self.substeps < 1:
            raise ValueError(
                f"WorldConfig.control_period {self.control_period} is shorter than a physics step"
            )

    @property
    def substeps(self) -> int:
        """Physics steps per control period (rounded; :meth:`SimWorld.step_control` keeps the remainder)."""
        return int(round(self.control_period * self.physics_hz))


@dataclass
class ObjectInfo:
    """Metadata of one object in the world.

    Attributes:
        body_id: PyBullet body id.
        name: Unambiguous name, e.g. ``"red block"`` or ``"small red block"``.
        color: Colour name.
        kind: ``block``, ``bowl`` or ``tray``.
        size: Block edge length, or container outer side (m).
        height: Height of the object (m).
    """

    body_id: int
    name: str
    color: str
    kind: str
    size: float
    height: float
    extra: dict = field(default_factory=dict)

    @property
    def is_block(self) -> bool:
        """True for graspable blocks."""
        return self.kind == "block"


@dataclass
class CameraInfo:
    """Intrinsics and pose of the simulated camera (pose of the optical frame in the base frame)."""

    width: int
    height: int
    K: np.ndarray
    T_base_camera: np.ndarray
    frame_id: str = BASE_FRAME


def _box_container(inner: float, wall: float, wh: float, base: float) -> dict[str, list]:
    """Box lists (``createCollisionShapeArray`` keywords) of a square container: base plate, four walls."""
    outer = inner + 2 * wall
    c = (inner + wall) / 2.0
    halves = [
        (outer / 2, outer / 2, base / 2),
        (wall / 2, outer / 2, wh / 2),
        (wall / 2, outer / 2, wh / 2),
        (inner / 2, wall / 2, wh / 2),
        (inner / 2, wall / 2, wh / 2),
    ]
    offsets = [(0, 0, base / 2), (c, 0, wh / 2), (-c, 0, wh / 2), (0, c, wh / 2), (0, -c, wh / 2)]
    return {"shapeTypes": [p.GEOM_BOX] * 5, "halfExtents": halves, "collisionFramePositions": offsets,
            "collisionFrameOrientations": [(0, 0, 0, 1)] * 5}


def _ring_walls(inner: float, wall: float, wh: float, segments: int = catalog.BOWL_WALL_SEGMENTS) -> dict[str, list]:
    """Box lists of a round container's wall: ``segments`` boxes on a ring of inner diameter ``inner``;
    each box reaches its neighbours' corners on the outside, so the ring has no gaps."""
    r_out = inner / 2 + wall
    r_mid = inner / 2 + wall / 2
    half_len = r_out * math.tan(math.pi / segments)
    angles = [2 * math.pi * i / segments for i in range(segments)]
    return {"shapeTypes": [p.GEOM_BOX] * segments, "halfExtents": [(wall / 2, half_len, wh / 2)] * segments,
            "collisionFramePositions": [(r_mid * math.cos(a), r_mid * math.sin(a), wh / 2) for a in angles],
            "collisionFrameOrientations": [(0.0, 0.0, math.sin(a / 2), math.cos(a / 2)) for a in angles]}


class SimWorld:
    """A Panda, a table, objects and a camera in its own PyBullet DIRECT client."""

    def __init__(self, config: WorldConfig | None = None) -> None:
        """Connect a DIRECT client and load the table and the robot."""
        self.config = config or WorldConfig()
        self.cid = p.connect(p.DIRECT)
        self.objects: dict[int, ObjectInfo] = {}
        self.last_clamped = False
        self.n_clamped = 0
        self.sim_time = 0.0
        self._pending_s = 0.0  # control time not yet simulated (see step_control)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.cid)
        p.setGravity(0, 0, -9.81, physicsClientId=self.cid)
        p.setTimeStep(1.0 / self.config.physics_hz, physicsClientId=self.cid)
        self._load_table()
        self._load_robot()
        self._setup_camera()

    # ------------------------------------------------------------------ setup
    def _load_table(self) -> None:
        half = (0.75, 0.75, 0.02)
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=self.cid)
        vis = p.createVisualShape(
            p.GEOM_BOX, halfExtents=half, rgbaColor=(0.6, 0.45, 0.3, 1), physicsClientId=self.cid
        )
        self.table_id = p.createMultiBody(
            0, col, vis, basePosition=(0.45, 0.0, catalog.TABLE_TOP_Z - half[2]), physicsClientId=self.cid
        )
        p.changeDynamics(self.table_id, -1, lateralFriction=0.5, physicsClientId=self.cid)

    def _load_robot(self) -> None:
        self.robot = p.loadURDF(
            "franka_panda/panda.urdf",
            basePosition=(0, 0, 0),
            useFixedBase=True,
            flags=p.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT,
            physicsClientId=self.cid,
        )
        n = p.getNumJoints(self.robot, physicsClientId=self.cid)
        infos = [p.getJointInfo(self.robot, j, physicsClientId=self.cid) for j in range(n)]
        movable = [i for i in infos if i[2] != p.JOINT_FIXED]
        self.joint_names = [i[1].decode() for i in movable]
        self.movable_joints = [i[0] for i in movable]
        self._ll = [i[8] for i in movable]
        self._ul = [i[9] for i in movable]
        self._jr = [u - lo for lo, u in zip(self._ll, self._ul, strict=True)]
        self._rest = list(REST_POSE) + [FINGER_MAX, FINGER_MAX]
        for f in FINGER_JOINTS:
            p.changeDynamics(
                self.robot,
                f,
                lateralFriction=catalog.OBJECT_FRICTION * 1.5,
                spinningFriction=0.01,
                frictionAnchor=True,
                physicsClientId=self.cid,
            )
        self.reset_robot()

    def reset_robot(self) -> None:
        """Put the arm in its rest pose with the gripper open and command that pose."""
        for j, q in zip(self.movable_joints, self._rest, strict=True):
            p.resetJointState(self.robot, j, q, 0.0, physicsClientId=self.cid)
        self._q_cmd = np.array(REST_POSE, float)
        self._gripper_cmd = 1.0
        self._apply_arm(self._q_cmd)
        self.set_gripper(1.0)
        pos, quat = self.ee_pose()
        self._target_pos, self._target_quat = pos, quat

    def _setup_camera(self) -> None:
        c = self.config
        self._view = p.computeViewMatrix(c.camera_eye, c.camera_target, (0, 0, 1), physicsClientId=self.cid)
        self._proj = p.computeProjectionMatrixFOV(
            c.fov_deg, c.image_width / c.image_height, c.near, c.far, physicsClientId=self.cid
        )
        view = np.array(self._view, float).reshape(4, 4).T  # world -> OpenGL camera
        gl_to_optical = np.diag([1.0, -1.0, -1.0, 1.0])
        self._T_base_cam = np.linalg.inv(view) @ gl_to_optical
        fy = c.image_height / (2.0 * math.tan(math.radians(c.fov_deg) / 2.0))
        self._K = np.array(
            [[fy, 0.0, c.image_width / 2.0 - 0.5], [0.0, fy, c.image_height / 2.0 - 0.5], [0.0, 0.0, 1.0]]
        )

    def close(self) -> None:
        """Disconnect the PyBullet client (idempotent)."""
        if self.cid is not None and self.cid >= 0:
            p.disconnect(physicsClientId=self.cid)
            self.cid = -1

    def __enter__(self) -> SimWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ commands
    def set_ee_target(self, pos: np.ndarray, quat_xyzw: np.ndarray) -> bool:
        """Command an absolute TCP pose in the base frame, clamped to the per-step motion limits.

        Args:
            pos: Target position (3,), metres.
            quat_xyzw: Target orientation quaternion (4,), x y z w.

        Returns:
            True when the command was clamped by the motion limits.

        Raises:
            ValueError: On NaN/inf or malformed input.
        """
        pos = np.asarray(pos, float).reshape(-1)
        quat = np.asarray(quat_xyzw, float).reshape(-1)
        if pos.shape != (3,) or quat.shape != (4,):
            raise ValueError(f"set_ee_target needs pos(3) and quat(4), got {pos.shape} and {quat.shape}")
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            raise ValueError(f"set_ee_target got non-finite values: pos={pos}, quat={quat}")
        norm = np.linalg.norm(quat)
        if norm < 1e-6:
            raise ValueError(f"set_ee_target got a zero quaternion {quat}")
        quat = quat / norm
        pos, quat, clamped = self._clamp_target(pos, quat)
        self._target_pos, self._target_quat = pos, quat
        self.last_clamped = clamped
        self.n_clamped += int(clamped)
        q = p.calculateInverseKinematics(
            self.robot,
            TCP_LINK,
            pos.tolist(),
            quat.tolist(),
            lowerLimits=self._ll,
            upperLimits=self._ul,
            jointRanges=self._jr,
            restPoses=self._rest,
            maxNumIterations=100,
            residualThreshold=1e-4,
            physicsClientId=self.cid,
        )
        self._q_cmd = np.array(q[:7], float)
        self._apply_arm(self._q_cmd)
        return clamped

    def _clamp_target(self, pos: np.ndarray, quat: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        c = self.config
        clamped = False
        delta = pos - self._target_pos
        dist = float(np.linalg.norm(delta))
        if dist > c.max_step_translation:
            pos = self._target_pos + delta * (c.max_step_translation / dist)
            clamped = True
        ang = quat_angle(self._target_quat, quat)
        if ang > c.max_step_rotation:
            quat = slerp(self._target_quat, quat, c.max_step_rotation / ang)
            clamped = True
        if clamped:
            logger.debug("EE target clamped (dist %.3f m, angle %.3f rad)", dist, ang)
        return pos, quat, clamped

    def _apply_arm(self, q: np.ndarray) -> None:
        p.setJointMotorControlArray(
            self.robot,
            list(ARM_JOINTS),
            p.POSITION_CONTROL,
            targetPositions=q.tolist(),
            forces=list(ARM_FORCES),
            positionGains=[0.2] * 7,
            physicsClientId=self.cid,
        )

    def set_gripper(self, width01: float) -> None:
        """Command the gripper opening: 0 closed, 1 fully open (0.04 m per finger)."""
        w = float(width01)
        if not math.isfinite(w):
            raise ValueError(f"set_gripper got non-finite width {width01!r}")
        self._gripper_cmd = min(1.0, max(0.0, w))
        target = self._gripper_cmd * FINGER_MAX
        p.setJointMotorControlArray(
            self.robot,
            list(FINGER_JOINTS),
            p.POSITION_CONTROL,
            targetPositions=[target, target],
            forces=[self.config.gripper_force] * 2,
            positionGains=[0.3, 0.3],
            physicsClientId=self.cid,
        )

    def step_control(self, n_substeps: int | None = None) -> None:
        """Advance physics by one control period (or ``n_substeps`` physics steps).

        A control period that is not a whole number of physics steps (5 ms at 200 Hz against 240 Hz physics)
        carries the remainder to the next period: 1, 1, 1, 1, 2 physics steps, 25 ms every 5 periods, so that
        simulated time keeps pace with the control clock (as ``sim_node`` does in real time).
        """
        if n_substeps is None:
            self._pending_s += self.config.control_period
            n = int(math.floor(self._pending_s * self.config.physics_hz + 1e-6))
            self._pending_s -= n / self.config.physics_hz
        else:
            n = int(n_substeps)
        for _ in range(n):
            p.stepSimulation(physicsClientId=self.cid)
        self.sim_time += n / self.config.physics_hz

    def step(self, dt: float) -> None:
        """Advance physics by ``dt`` seconds (rounded to physics steps)."""
        self.step_control(seconds_to_steps(dt, self.config.physics_hz))

    def settle(self, seconds: float = 0.3) -> None:
        """Let objects settle without moving the commanded targets."""
        self.step(seconds)

    # ------------------------------------------------------------------ state
    @property
    def ee_target(self) -> tuple[np.ndarray, np.ndarray]:
        """Last (clamped) commanded TCP pose."""
        return self._target_pos.copy(), self._target_quat.copy()

    @property
    def gripper_command(self) -> float:
        """Last gripper command in [0, 1]."""
        return self._gripper_cmd

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured TCP pose ``(pos, quat_xyzw)`` in the base frame."""
        st = p.getLinkState(self.robot, TCP_LINK, computeForwardKinematics=True, physicsClientId=self.cid)
        return np.array(st[4], float), np.array(st[5], float)

    def joint_state(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Names, positions, velocities and efforts of the 9 movable joints (7 arm + 2 fingers)."""
        states = p.getJointStates(self.robot, self.movable_joints, physicsClientId=self.cid)
        pos = np.array([s[0] for s in states])
        vel = np.array([s[1] for s in states])
        eff = np.array([s[3] for s in states])
        return list(self.joint_names), pos, vel, eff

    def gripper_width01(self) -> float:
        """Measured gripper opening in [0, 1]."""
        states = p.getJointStates(self.robot, list(FINGER_JOINTS), physicsClientId=self.cid)
        return float(np.clip((states[0][0] + states[1][0]) / (2 * FINGER_MAX), 0.0, 1.0))

    # ------------------------------------------------------------------ objects
    def add_block(
        self,
        color: str,
        size: float,
        pos: tuple[float, float, float] | np.ndarray,
        yaw: float,
        name: str | None = None,
    ) -> int:
        """Add a cube of edge ``size`` resting at ``pos`` (xy; z is its centre) and return its body id."""
        rgba = self._rgba(color)
        half = [size / 2.0] * 3
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=self.cid)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=self.cid)
        z = max(float(pos[2]), size / 2.0) if len(pos) > 2 else size / 2.0
        bid = p.createMultiBody(
            catalog.BLOCK_MASS,
            col,
            vis,
            basePosition=(pos[0], pos[1], z),
            baseOrientation=p.getQuaternionFromEuler((0, 0, yaw)),
            physicsClientId=self.cid,
        )
        p.changeDynamics(
            bid,
            -1,
            lateralFriction=catalog.OBJECT_FRICTION,
            spinningFriction=0.002,
            rollingFriction=0.0001,
            physicsClientId=self.cid,
        )
        label = name or f"{color} block"
        self.objects[bid] = ObjectInfo(bid, label, color, "block", size, size)
        return bid

    def add_container(
        self,
        color: str,
        kind: str,
        pos: tuple[float, float] | np.ndarray,
        yaw: float,
        name: str | None = None,
    ) -> int:
        """Add a static container centred at ``pos`` (xy) and return its id: a base plate and four walls
        (a tray), or a disc and a ring of wall segments (the kinds of :data:`catalog.ROUND_CONTAINERS`)."""
        if kind not in catalog.CONTAINER_KINDS:
            raise ValueError(
                f"unknown container kind {kind!r}; expected one of {sorted(catalog.CONTAINER_KINDS)}"
            )
        dims = catalog.CONTAINER_KINDS[kind]
        inner, wall, wh, base = dims["inner"], dims["wall"], dims["wall_height"], dims["base"]
        outer = inner + 2 * wall
        rgba = self._rgba(color)
        pose = {"basePosition": (pos[0], pos[1], catalog.TABLE_TOP_Z),
                "baseOrientation": p.getQuaternionFromEuler((0, 0, yaw)), "physicsClientId": self.cid}
        if kind in catalog.ROUND_CONTAINERS:
            # a disc as the base and the wall ring as one fixed link: a cylinder and boxes in one visual
            # shape array crash pybullet (3.2.x, segmentation fault)
            disc_col = p.createCollisionShape(p.GEOM_CYLINDER, radius=outer / 2, height=base,
                                              collisionFramePosition=(0, 0, base / 2), physicsClientId=self.cid)
            disc_vis = p.createVisualShape(p.GEOM_CYLINDER, radius=outer / 2, length=base, rgbaColor=rgba,
                                           visualFramePosition=(0, 0, base / 2), physicsClientId=self.cid)
            walls_col, walls_vis = self._shape_arrays(_ring_walls(inner, wall, wh), rgba)
            bid = p.createMultiBody(
                0, disc_col, disc_vis, **pose,
                linkMasses=[0], linkCollisionShapeIndices=[walls_col], linkVisualShapeIndices=[walls_vis],
                linkPositions=[(0, 0, 0)], linkOrientations=[(0, 0, 0, 1)],
                linkInertialFramePositions=[(0, 0, 0)], linkInertialFrameOrientations=[(0, 0, 0, 1)],
                linkParentIndices=[0], linkJointTypes=[p.JOINT_FIXED], linkJointAxis=[(0, 0, 1)],
            )
            p.changeDynamics(bid, 0, lateralFriction=catalog.OBJECT_FRICTION, physicsClientId=self.cid)
        else:
            col, vis = self._shape_arrays(_box_container(inner, wall, wh, base), rgba)
            bid = p.createMultiBody(0, col, vis, **pose)
        p.changeDynamics(bid, -1, lateralFriction=catalog.OBJECT_FRICTION, physicsClientId=self.cid)
        label = name or f"{color} {kind}"
        self.objects[bid] = ObjectInfo(bid, label, color, kind, outer, wh, {"inner": inner, "base": base})
        return bid

    def _shape_arrays(self, shapes: dict[str, list], rgba: tuple[float, ...]) -> tuple[int, int]:
        """Collision and visual shape ids of the box lists ``shapes`` (one colour)."""
        col = p.createCollisionShapeArray(**shapes, physicsClientId=self.cid)
        vis = p.createVisualShapeArray(
            shapes["shapeTypes"],
            halfExtents=shapes["halfExtents"],
            visualFramePositions=shapes["collisionFramePositions"],
            visualFrameOrientations=shapes["collisionFrameOrientations"],
            rgbaColors=[rgba] * len(shapes["shapeTypes"]),
            physicsClientId=self.cid,
        )
        return col, vis

    @staticmethod
    def _rgba(color: str) -> tuple[float, float, float, float]:
        if color not in COLORS:
            raise ValueError(f"unknown colour {color!r}; expected one of {sorted(COLORS)}")
        return COLORS[color]

    def object_pose(self, body_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Pose ``(pos, quat_xyzw)`` of an object's base in the base frame."""
        pos, quat = p.getBasePositionAndOrientation(body_id, physicsClientId=self.cid)
        return np.array(pos, float), np.array(quat, float)

    def object_yaw(self, body_id: int) -> float:
        """Yaw (rad) of an object about the vertical axis."""
        _, quat = self.object_pose(body_id)
        return float(p.getEulerFromQuaternion(quat.tolist())[2])

    def object_by_name(self, name: str) -> ObjectInfo:
        """Return the object named ``name``; raise KeyError if there is none."""
        for info in self.objects.values():
            if info.name == name:
                return info
        raise KeyError(f"no object named {name!r}; have {[o.name for o in self.objects.values()]}")

    def move_object(self, body_id: int, pos: np.ndarray, quat: np.ndarray | None = None) -> None:
        """Teleport an object (used by perturbations and tests)."""
        if quat is None:
            quat = self.object_pose(body_id)[1]
        p.resetBasePositionAndOrientation(body_id, list(pos), list(quat), physicsClientId=self.cid)
        p.resetBaseVelocity(body_id, [0, 0, 0], [0, 0, 0], physicsClientId=self.cid)

    def remove_all_objects(self) -> None:
        """Remove every block and container."""
        for bid in list(self.objects):
            p.removeBody(bid, physicsClientId=self.cid)
        self.objects.clear()

    def contact_with_fingers(self, body_id: int) -> bool:
        """True when both fingers touch the object."""
        return all(
            len(p.getContactPoints(self.robot, body_id, linkIndexA=f, physicsClientId=self.cid)) > 0
            for f in FINGER_JOINTS
        )

    # ------------------------------------------------------------------ camera
    def camera_info(self) -> CameraInfo:
        """Intrinsics ``K`` and the optical-frame pose ``T_base_camera`` of the fixed camera."""
        return CameraInfo(
            self.config.image_width, self.config.image_height, self._K.copy(), self._T_base_cam.copy()
        )

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """Render the camera with TinyRenderer: ``(rgb uint8 HxWx3, depth float32 HxW metres)``."""
        c = self.config
        _, _, rgba, zbuf, _ = p.getCameraImage(
            c.image_width,
            c.image_height,
            self._view,
            self._proj,
            renderer=p.ER_TINY_RENDERER,
            physicsClientId=self.cid,
        )
        rgb = np.asarray(rgba, np.uint8).reshape(c.image_height, c.image_width, 4)[:, :, :3].copy()
        zb = np.asarray(zbuf, np.float64).reshape(c.image_height, c.image_width)
        depth = c.far * c.near / (c.far - (c.far - c.near) * zb)
        return rgb, depth.astype(np.float32)

    def project(self, points_base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project base-frame points (Nx3) to pixel coordinates ``(u, v)`` (pixel centres are integers)."""
        pts = np.atleast_2d(np.asarray(points_base, float))
        T_cam_base = np.linalg.inv(self._T_base_cam)
        pc = pts @ T_cam_base[:3, :3].T + T_cam_base[:3, 3]
        z = pc[:, 2]
        u = self._K[0, 0] * pc[:, 0] / z + self._K[0, 2]
        v = self._K[1, 1] * pc[:, 1] / z + self._K[1, 2]
        return u, v

    def deproject(self, u: float, v: float, depth: float) -> np.ndarray:
        """Back-project pixel ``(u, v)`` with z-depth ``depth`` (m) to a base-frame point."""
        x = (u - self._K[0, 2]) / self._K[0, 0] * depth
        y = (v - self._K[1, 2]) / self._K[1, 1] * depth
        pc = np.array([x, y, depth, 1.0])
        return (self._T_base_cam @ pc)[:3]
