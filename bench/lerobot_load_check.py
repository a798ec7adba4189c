"""Load a dataset written by ``robo-stack export lerobot`` with the ``lerobot`` package's own ``LeRobotDataset``.

Run with a Python that has ``lerobot`` (0.4.x, dataset format v3.0) installed, e.g. a throwaway venv::

    python bench/lerobot_load_check.py OUT [--torchvision-shim]

It prints what LeRobot read back (episodes, frames, fps, feature shapes, one frame) and checks
that it matches ``meta/info.json``. lerobot 0.4 pins ``torch<2.11`` and imports ``torchvision`` at
module level; where the only torchvision wheel on hand cannot load against the installed torch
(e.g. this project's CPU torch 2.13), ``--torchvision-shim`` installs an in-process stand-in with
the one piece the image (non-video) load path calls: ``transforms.ToTensor`` (PIL -> float CHW in
[0, 1]). Video decoding is not used by image datasets. Exit status 0 when everything matches.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import sys
import types
from pathlib import Path


def install_torchvision_shim() -> None:
    """Register a minimal ``torchvision`` module providing ``transforms.ToTensor``."""
    import numpy as np
    import torch

    class ToTensor:
        """PIL image -> float32 tensor (C, H, W) in [0, 1], as torchvision's ToTensor for RGB images."""

        def __call__(self, img: object) -> torch.Tensor:
            arr = np.asarray(img, dtype=np.float32) / 255.0
            return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.ToTensor = ToTensor
    tv.transforms.v2 = types.ModuleType("torchvision.transforms.v2")
    tv.__version__ = "shim"
    for mod in (tv, tv.transforms, tv.transforms.v2):
        mod.__spec__ = importlib.machinery.ModuleSpec(mod.__name__, None)
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms,
                        "torchvision.transforms.v2": tv.transforms.v2})


def main() -> int:
    """Load the dataset and compare it with its info.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--torchvision-shim", action="store_true")
    args = parser.parse_args()
    if args.torchvision_shim:
        try:
            import torchvision  # noqa: F401
        except Exception:  # noqa: BLE001 - any failure to load the real one
            install_torchvision_shim()
    from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset

    info = json.loads((args.root / "meta" / "info.json").read_text())
    ds = LeRobotDataset("local/robo_stack_export", root=args.root)
    frame = ds[len(ds) // 2]
    report = {
        "lerobot_codebase_version": CODEBASE_VERSION, "num_episodes": ds.num_episodes, "num_frames": ds.num_frames,
        "len": len(ds), "fps": ds.fps, "tasks": list(ds.meta.tasks.index),
        "frame": {k: (list(v.shape), str(v.dtype)) if hasattr(v, "shape") else v for k, v in frame.items()},
        "stats_keys": sorted(ds.meta.stats) if ds.meta.stats else None,
    }
    print(json.dumps(report, indent=2, default=str))
    ok = (CODEBASE_VERSION == info["codebase_version"] and ds.num_episodes == info["total_episodes"]
          and ds.num_frames == info["total_frames"] == len(ds) and ds.fps == info["fps"])
    h, w, c = info["features"]["observation.images.color"]["shape"]
    ok = ok and list(frame["observation.images.color"].shape) == [c, h, w]
    ok = ok and list(frame["observation.state"].shape) == info["features"]["observation.state"]["shape"]
    last = ds[len(ds) - 1]
    ok = ok and int(last["episode_index"]) == info["total_episodes"] - 1
    # the usual training access: an action chunk through delta_timestamps (uses the episode index ranges)
    dt = 1.0 / info["fps"]
    chunked = LeRobotDataset("local/robo_stack_export", root=args.root,
                             delta_timestamps={"action": [0.0, dt, 2 * dt, 3 * dt]})
    item = chunked[0]
    print("action chunk", list(item["action"].shape), "pad", item["action_is_pad"].tolist())
    ok = ok and list(item["action"].shape) == [4, 8] and not bool(item["action_is_pad"].any())
    print("MATCH" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
