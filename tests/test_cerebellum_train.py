"""Cerebellum data and training: bags -> aligned arrays -> a few epochs (resumed) -> closed-loop run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robo_cerebellum.config import CerebellumConfig
from robo_cerebellum.dataset import (
    K_FAILURE,
    K_IMAGES,
    K_SUBTASK,
    K_TARGET_POS,
    BagError,
    decode_bag,
    load_episodes,
)
from robo_cerebellum.policy import CerebellumPolicy
from robo_cerebellum.train import TrainConfig, drift, train
from robo_sim.collect import CollectConfig, collect
from robo_system.closed_loop import ClosedLoopConfig, evaluate

TINY = dict(hidden_size=32, num_layers=1, head_dim=16, state_size=8, visual_dim=16, image_size=32, chunk_size=16)


@pytest.fixture(scope="module")
def bags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cb_bags")
    cfg = CollectConfig(episodes=4, split="seen", seed0=20, perturb=("slip",), perturb_fraction=0.25,
                        family="pick_place")
    assert collect(cfg, out, workers=1, progress=False).written == 4
    return out


def test_decode_aligns_commands_with_observations(bags: Path) -> None:
    cfg = CerebellumConfig(**TINY)
    ep = decode_bag(sorted(p for p in bags.iterdir() if p.name.startswith("ep_") and "slip" not in p.name)[0], cfg)
    a = ep.arrays
    n = ep.length
    assert n > 50 and all(len(a[k]) == n for k in a if k != K_IMAGES)
    assert a[K_IMAGES].shape[1:] == (4, 32, 32)
    assert set(np.unique(a[K_SUBTASK])) == {0, 1}  # pick, place (done() is never executed)
    # the first target leaves from the initial measured pose; targets lead the measured pose by < 4 cm
    assert np.all(np.linalg.norm(a[K_TARGET_POS] - a["ee_pos"], axis=1) < 0.045)
    assert a[K_FAILURE].sum() == 0
    assert ep.plan.subtasks[0].skill == "pick"


def test_perturbed_episode_has_failure_labels(bags: Path) -> None:
    ep = decode_bag(next(p for p in bags.iterdir() if p.name.endswith("_slip")), CerebellumConfig(**TINY))
    assert 0 < ep.arrays[K_FAILURE].sum() < ep.length and ep.arrays[K_FAILURE][-1] == 1.0


def test_bad_bags_are_reported_and_skipped(bags: Path, tmp_path: Path) -> None:
    broken = tmp_path / "data"
    broken.mkdir()
    good = next(p for p in bags.iterdir() if p.name.startswith("ep_"))
    import shutil

    shutil.copytree(good, broken / good.name)
    bad = broken / "ep_truncated"
    shutil.copytree(good, bad)
    mcap = next(bad.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:2000])
    with pytest.raises(BagError, match="ep_truncated"):
        decode_bag(bad, CerebellumConfig(**TINY))
    episodes, errors = load_episodes(broken, CerebellumConfig(**TINY), progress=False)
    assert len(episodes) == 1 and len(errors) == 1 and "ep_truncated" in errors[0]


def test_train_resume_and_closed_loop(bags: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    tcfg = TrainConfig(epochs=2, batch_size=2, val_fraction=0.3, threads=1)
    first = train(bags, out, CerebellumConfig(**TINY), TrainConfig(**{**tcfg.__dict__, "epochs": 1}), progress=False)
    assert first["epochs_done"] == 1 and (out / "model.safetensors").is_file()
    second = train(bags, out, CerebellumConfig(**TINY), tcfg, progress=False)  # resumes at epoch 1
    assert second["epochs_done"] == 2 and len(second["history"]) == 2
    assert all(np.isfinite(h["loss"]) for h in second["history"])
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in log] == [1, 2]
    with pytest.raises(ValueError, match="another model config"):
        train(bags, out, CerebellumConfig(**{**TINY, "hidden_size": 64}), tcfg, progress=False)
    vocabulary = CerebellumPolicy.load(out).cfg.code_vocabulary
    assert {"pick", "place", "object", "target", "done"} <= set(vocabulary) and list(vocabulary) == sorted(vocabulary)
    report = evaluate(out, 1, "seen", perturb=["slip"], workers=1, cfg=ClosedLoopConfig(timeout_s=3.0),
                      progress=False)
    assert report["episodes"] == 1 and report["perturbed_episodes"] == 1
    assert set(report["success_rate"]) == {"pick_place"}
    fd = report["failure_detection"]
    assert {"precision", "recall", "recall_by_mode", "recall_by_family"} <= set(fd)
    assert set(fd["recall_by_mode"]) == {"slip"} and set(fd["recall_by_family"]) == {"pick_place"}


def test_drift_noise_is_slow_and_has_the_asked_spread() -> None:
    """The DART-style offset wanders slowly (neighbouring steps nearly equal) with the requested spread."""
    rng = np.random.default_rng(0)
    x = np.concatenate([drift(400, 0.01, rng) for _ in range(200)])
    assert x.shape == (80_000, 3)
    assert x.std() == pytest.approx(0.01, rel=0.1)
    steps = np.abs(np.diff(x[:400], axis=0))
    assert steps.mean() < 0.003  # a white offset of the same spread would move ~11 mm per step
    with pytest.raises(ValueError, match="drift_fraction"):
        TrainConfig(drift_fraction=1.5)


def test_the_policy_rate_is_the_recordings_control_rate_and_durations_are_seconds(bags: Path) -> None:
    """A checkpoint says the rate it was trained at (what cerebellum_node steps it at); mixed rates are refused;
    the failure label leads the failure by 0.75 s at any rate."""
    from robo_cerebellum.dataset import Episode, failure_labels
    from robo_cerebellum.train import _with_data_rate

    episodes, _ = load_episodes(bags, CerebellumConfig(**TINY), progress=False)
    assert all(e.rate_hz == 20.0 for e in episodes)
    assert _with_data_rate(CerebellumConfig(**TINY, policy_hz=200.0), episodes).policy_hz == 20.0
    fast = Episode("fast", episodes[0].arrays, episodes[0].plan, {**episodes[0].meta, "control_hz": 200.0})
    with pytest.raises(ValueError, match="mixes control rates"):
        _with_data_rate(CerebellumConfig(**TINY), [*episodes, fast])
    meta = {"failures": [{"step": 1000}]}
    assert failure_labels(2000, meta, 200.0).argmax() == 1000 - 150
    assert failure_labels(200, {"failures": [{"step": 100}]}, 20.0).argmax() == 100 - 15


def test_the_commanded_target_can_lead_the_step_within_its_subtask() -> None:
    from robo_cerebellum.train import lead_index

    subtask = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    assert lead_index(subtask, 2).tolist() == [2, 3, 3, 3, 6, 6, 6, 7]  # never into the next subtask
    assert lead_index(subtask, 0).tolist() == list(range(8))
    with pytest.raises(ValueError, match="target_lead_s"):
        CerebellumConfig(target_lead_s=-0.1)


def test_delayed_states_are_the_newest_arrived_within_the_delay() -> None:
    from robo_cerebellum.train import delayed_index

    rng = np.random.default_rng(0)
    seen = delayed_index(400, 3, rng)
    t = np.arange(400)
    assert np.all(np.diff(seen) >= 0) and np.all(seen <= t)  # never back in time, never from the future
    assert np.all(t[3:] - seen[3:] <= 3)  # no older than the longest delay
    ages = t - seen
    assert set(np.unique(ages)) == {0, 1, 2, 3} and 0.5 < ages.mean() < 1.5  # jitter, not one fixed lag
    assert delayed_index(5, 0, rng).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="state_delay_s"):
        TrainConfig(state_delay_s=-0.01)


def test_progress_can_be_labelled_at_the_commanded_target_and_the_width_seen_can_wander(bags: Path) -> None:
    """``progress_lead``: a subtask's end (label 1.0) spans the target lead instead of one step; ``width_drift``:
    the finger width the policy sees carries a slow offset, in [0, 1], while the gripper label is unchanged;
    the camera rate of the recordings goes into the checkpoint's config."""
    from robo_cerebellum.dataset import K_GRIPPER_CMD, K_PROGRESS
    from robo_cerebellum.train import _camera_rate, episode_tensors

    cfg = CerebellumConfig(**TINY, target_lead_s=0.15)  # 3 steps at 20 Hz
    episodes, _ = load_episodes(bags, cfg, progress=False)
    ep = next(e for e in episodes if e.arrays[K_FAILURE].sum() == 0)
    sub = ep.arrays[K_SUBTASK]
    plain = episode_tensors(ep, cfg, None, 0.0)
    lead = episode_tensors(ep, cfg, None, 0.0, progress_lead=True)
    for index in np.unique(sub):
        rows = np.flatnonzero(sub == index)
        assert (plain["progress"][rows] >= 0.999).sum() == 1  # the recorded label: 1.0 on the last step only
        assert (lead["progress"][rows] >= 0.999).sum() == 4  # the last step and the 3 that command it
        ahead = np.minimum(rows + 3, rows[-1])  # the step whose target is commanded, within the subtask
        np.testing.assert_allclose(lead["progress"][rows], ep.arrays[K_PROGRESS][ahead])
    rng = np.random.default_rng(1)
    noisy = episode_tensors(ep, cfg, rng, 0.0, drift_fraction=1.0, width_drift=0.15)
    width, clean_width = noisy["proprio"][:, 9], plain["proprio"][:, 9]
    assert 0.04 < np.std(width - clean_width) and width.min() >= 0.0 and width.max() <= 1.0
    assert np.abs(np.diff(width - clean_width)).mean() < 0.03  # slow, not white
    np.testing.assert_array_equal(noisy["gripper"], plain["gripper"])
    assert np.all(np.isin(plain["gripper"], ep.arrays[K_GRIPPER_CMD]))
    assert _camera_rate(episodes) == 5.0
    with pytest.raises(ValueError, match="width_drift"):
        TrainConfig(width_drift=-0.1)
