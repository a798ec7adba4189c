"""Cerebellum core: rotations, features, the network's parallel/recurrent equivalence, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.features import code_token_ids, keypoint_features, sequence_inputs, skill_index
from robo_cerebellum.model import CerebellumNet
from robo_cerebellum.policy import CerebellumPolicy, CheckpointError, Observation
from robo_cerebellum.rotations import geodesic_angle, quat_to_rot6d, rot6d_to_matrix
from robo_common.geometry import matrix_to_quat, quat_angle
from robo_common.plan_types import KeypointData, SubtaskData

TINY = dict(hidden_size=32, num_layers=1, head_dim=16, state_size=8, visual_dim=16, image_size=32, chunk_size=16)


def _random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_rot6d_roundtrip_and_geodesic() -> None:
    quats = _random_quats(20)
    for q in quats:
        back = matrix_to_quat(rot6d_to_matrix(torch.tensor(quat_to_rot6d(q))).numpy())
        assert quat_angle(back, q) < 1e-6
    r6 = torch.tensor(quat_to_rot6d(quats), dtype=torch.float32)
    assert torch.allclose(geodesic_angle(rot6d_to_matrix(r6), rot6d_to_matrix(r6)), torch.zeros(20), atol=2e-3)
    # 90 degrees about z
    a = torch.tensor(quat_to_rot6d(np.array([0, 0, 0, 1.0])))
    b = torch.tensor(quat_to_rot6d(np.array([0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)])))
    assert float(geodesic_angle(rot6d_to_matrix(a), rot6d_to_matrix(b))) == pytest.approx(math.pi / 2, abs=1e-4)


def test_features_unknown_skill_and_hashing() -> None:
    cfg = CerebellumConfig(**TINY)
    with pytest.raises(ValueError, match="unknown skill 'grab'"):
        skill_index("grab", cfg)
    a, b = code_token_ids('pick(object="cyan block")', cfg), code_token_ids('pick(object="red block")', cfg)
    assert a.shape == (cfg.code_tokens,) and (a != b).any() and (a[:1] == b[:1]).all()
    kp = keypoint_features({"grasp": np.array([0.5, 0.1, 0.02])}, np.array([0.5, 0.0, 0.3]), cfg)
    assert kp[6] == 1.0 and kp[13] == 0.0  # grasp slot present, place slot absent


def test_a_code_word_outside_the_trained_vocabulary_is_left_out() -> None:
    words = ("pick", "object", "red", "block", "done")
    cfg = CerebellumConfig(**TINY, code_vocabulary=words)
    cyan, bare = code_token_ids('pick(object="cyan block")', cfg), code_token_ids('pick(object="block")', cfg)
    assert (cyan == bare).all() and int((cyan > 0).sum()) == 3  # "cyan" dropped, not hashed to a random row
    assert (code_token_ids('pick(object="red block")', cfg) > 0).sum() == 4
    everything = CerebellumConfig(**TINY)  # no vocabulary (older checkpoints): every word is hashed
    assert int((code_token_ids('pick(object="cyan block")', everything) > 0).sum()) == 4
    assert CerebellumConfig(**cfg.to_dict()).code_vocabulary == words


def _subtasks() -> list[SubtaskData]:
    return [SubtaskData(0, 'pick(object="red block")', "pick", [KeypointData("grasp", (0.5, 0.1, 0.02))]),
            SubtaskData(1, 'place(target="blue bowl")', "place", [KeypointData("place", (0.4, -0.1, 0.03))])]


@pytest.mark.parametrize(("backbone", "time_input"), [("mamba2", False), ("transformer", False), ("mamba2", True)])
def test_recurrent_steps_match_parallel_forward(backbone: str, time_input: bool) -> None:
    """The policy's step() carries the state exactly like the training-time parallel forward (with and without
    the time-in-subtask input, which the step path and the sequence path compute separately)."""
    cfg = CerebellumConfig(**{**TINY, "backbone": backbone, "time_input": time_input})
    assert cfg.proprio_dim == (11 if time_input else 10)
    policy = CerebellumPolicy.from_config(cfg, seed=1)
    rng = np.random.default_rng(0)
    t = 24
    index = np.array([0] * 14 + [1] * 10)
    ee_pos = np.array([0.5, 0.0, 0.3]) + rng.normal(0, 0.02, (t, 3))
    ee_quat, width = _random_quats(t, 1), rng.uniform(0, 1, t)
    rgb = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 1.5, (40, 40)).astype(np.float32)
    policy.reset()
    policy.update_image(rgb, depth)
    stepped = []
    for k in range(t):
        if k == 0 or index[k] != index[k - 1]:
            policy.set_subtask(_subtasks()[index[k]])
        stepped.append(policy.step(Observation(ee_pos[k], ee_quat[k], float(width[k]))).target_pos)
    inputs = sequence_inputs(_subtasks(), index, ee_pos, ee_quat, width, cfg)
    net = policy.net
    with torch.no_grad():
        from robo_cerebellum.features import image_tensor

        visual = net.visual(torch.from_numpy(image_tensor(rgb, depth, cfg))[None]).expand(t, -1)[None]
        emb = net.embed(visual, *(torch.from_numpy(inputs[k])[None] for k in ("skill", "code", "keypoints",
                                                                              "proprio")))
        out = net(emb)
    parallel = ee_pos + out["delta"][0].double().numpy() * cfg.delta_scale
    assert np.allclose(np.array(stepped), parallel, atol=1e-4)
    policy.reset()  # a new plan: the recurrent state goes, the camera's latest frame stays (as in training)
    assert policy.state.cache is None and policy.state.steps == 0 and policy.state.visual is not None


def test_checkpoint_roundtrip_and_errors(tmp_path: Path) -> None:
    cfg = CerebellumConfig(**TINY)
    policy = CerebellumPolicy.from_config(cfg, seed=3)
    policy.save(tmp_path / "ckpt")
    loaded = CerebellumPolicy.load(tmp_path / "ckpt")
    assert loaded.cfg == cfg
    for a, b in zip(policy.net.state_dict().values(), loaded.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="not a cerebellum checkpoint"):
        CerebellumPolicy.load(tmp_path / "missing")
    other = CerebellumConfig(**{**TINY, "hidden_size": 64})
    other.save(tmp_path / "ckpt" / "config.json")
    with pytest.raises(CheckpointError, match="do not match"):
        CerebellumPolicy.load(tmp_path / "ckpt")


def test_policy_rejects_bad_observations() -> None:
    policy = CerebellumPolicy.from_config(CerebellumConfig(**TINY))
    obs = Observation(np.array([0.5, 0, 0.3]), np.array([1.0, 0, 0, 0]), 1.0)
    with pytest.raises(ValueError, match="no active subtask"):
        policy.step(obs)
    policy.set_subtask(_subtasks()[0])
    with pytest.raises(ValueError, match="non-finite"):
        policy.step(Observation(np.array([np.nan, 0, 0.3]), obs.ee_quat, 1.0))
    cmd = policy.step(obs)
    assert cmd.target_pos.shape == (3,) and abs(np.linalg.norm(cmd.target_quat) - 1) < 1e-9
    assert 0 <= cmd.gripper <= 1 and 0 <= cmd.failure_probability <= 1


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backbone"):
        CerebellumConfig(backbone="lstm")
    with pytest.raises(ValueError, match="divisible"):
        CerebellumConfig(hidden_size=48, head_dim=36)
    (tmp_path / "c.json").write_text('{"hidden_size": 32, "bogus": 1}')
    with pytest.raises(ValueError, match="bogus"):
        CerebellumConfig.load(tmp_path / "c.json")
    assert CerebellumNet(CerebellumConfig(**TINY))
