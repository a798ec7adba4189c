"""The pinhole camera model both systems share: intrinsics, image size and the optical frame's pose.

``T_base_camera`` is the pose of the optical frame (z forward / x right / y down) in the robot
base frame. The brain lifts keypoint pixels to 3D with it (:mod:`robo_brain.keypoints`); the
cerebellum projects plan keypoints into the image for its scene checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo_common.geometry import pose_to_matrix


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera: intrinsics ``K`` (3x3), image size, and ``T_base_camera`` (4x4 optical-frame pose)."""

    K: np.ndarray
    T_base_camera: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        K = np.asarray(self.K, float)
        T = np.asarray(self.T_base_camera, float)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"CameraModel.K must be a finite 3x3 matrix with fx, fy > 0, got {K.tolist()}")
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"CameraModel.T_base_camera must be a finite 4x4 matrix, got shape {T.shape}")
        if not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-3):
            raise ValueError("CameraModel.T_base_camera rotation is not orthonormal")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"CameraModel image size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "T_base_camera", T)

    @classmethod
    def from_camera_info(cls, info: object, T_base_camera: np.ndarray) -> CameraModel:
        """The model of a ``sensor_msgs/CameraInfo`` (``k``, ``width``, ``height``) at pose ``T_base_camera``."""
        return cls(np.array(info.k, float).reshape(3, 3), T_base_camera, int(info.width), int(info.height))

    def project(self, point_base: np.ndarray) -> tuple[float, float]:
        """Pixel ``(u, v)`` of a base-frame point (pixel centres are integers)."""
        T_cam_base = np.linalg.inv(self.T_base_camera)
        pc = T_cam_base[:3, :3] @ np.asarray(point_base, float) + T_cam_base[:3, 3]
        return (float(self.K[0, 0] * pc[0] / pc[2] + self.K[0, 2]), float(self.K[1, 1] * pc[1] / pc[2] + self.K[1, 2]))

    def deproject(self, u: float, v: float, depth: float) -> np.ndarray:
        """Base-frame point of pixel ``(u, v)`` at z-depth ``depth`` (m)."""
        x = (u - self.K[0, 2]) / self.K[0, 0] * depth
        y = (v - self.K[1, 2]) / self.K[1, 1] * depth
        return self.T_base_camera[:3, :3] @ np.array([x, y, depth]) + self.T_base_camera[:3, 3]

    def project_many(self, points_base: np.ndarray) -> np.ndarray:
        """Pixels ``(N, 2)`` of base-frame points ``(N, 3)`` (:meth:`project` for many points at once)."""
        T_cam_base = np.linalg.inv(self.T_base_camera)
        pc = np.asarray(points_base, float) @ T_cam_base[:3, :3].T + T_cam_base[:3, 3]
        return np.stack([self.K[0, 0] * pc[:, 0] / pc[:, 2] + self.K[0, 2],
                         self.K[1, 1] * pc[:, 1] / pc[:, 2] + self.K[1, 2]], axis=1)

    def deproject_many(self, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Base-frame points ``(N, 3)`` of pixels ``u``, ``v`` at z-depths ``depth`` (:meth:`deproject` for many)."""
        depth = np.asarray(depth, float)
        cam = np.stack([(np.asarray(u, float) - self.K[0, 2]) / self.K[0, 0] * depth,
                        (np.asarray(v, float) - self.K[1, 2]) / self.K[1, 1] * depth, depth], axis=1)
        return cam @ self.T_base_camera[:3, :3].T + self.T_base_camera[:3, 3]


class CameraTracker:
    """The camera model from the latest intrinsics (a ``CameraInfo``-like object) and extrinsics (a pose in the
    base frame), once both are known; each setter returns "" or why the input was refused."""

    def __init__(self, base_frame: str) -> None:
        """No camera known yet."""
        self.base_frame = base_frame
        self.info: object | None = None
        self.T_base_camera: np.ndarray | None = None
        self.model: CameraModel | None = None

    def set_info(self, info: object) -> str:
        """New intrinsics (``k``, ``width``, ``height``); the same ``k`` again changes nothing."""
        if self.info is not None and list(info.k) == list(self.info.k):
            return ""
        self.info = info
        return self._update()

    def set_pose(self, frame_id: str, pose: np.ndarray) -> str:
        """New extrinsics: ``pose`` = x, y, z, qx, qy, qz, qw of the camera in ``frame_id``."""
        pose = np.asarray(pose, float)
        if frame_id not in ("", self.base_frame) or pose.shape != (7,) or not np.all(np.isfinite(pose)) \
                or np.linalg.norm(pose[3:]) < 1e-6:
            return (f"camera pose ignored: frame {frame_id!r}, values {pose.tolist()} (expected a finite pose in "
                    f"{self.base_frame!r})")
        self.T_base_camera = pose_to_matrix(pose[:3], pose[3:] / np.linalg.norm(pose[3:]))
        return self._update()

    def _update(self) -> str:
        if self.info is None or self.T_base_camera is None:
            return ""
        try:
            self.model = CameraModel.from_camera_info(self.info, self.T_base_camera)
        except ValueError as exc:
            self.model = None
            return f"camera model not usable: {exc}"
        return ""
