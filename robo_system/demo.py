"""``robo-stack demo``: the closed-loop demo — three nodes over DDS, one instruction, a bag and a picture.

Starts ``sim_node``, ``brain_node`` and ``cerebellum_node`` as separate processes (the
executables and parameter files of ``launch/sim.launch.py``), loads a simulated task, sends its
instruction (or ``--instruction``) on ``/robo/instruction``, prints the plan and per-subtask
progress as they arrive, records the run as a rosbag2 (mcap), writes a GIF of the episode with
the plan's keypoints drawn, and shuts everything down. Exit code 0 when the task succeeded.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robo_common import constants as C
from robo_common.plan_types import PlanData
from robo_sim.recording import BAG_TOPICS
from robo_system.stack import StackConfig, StackProcesses, make_client

LOG = logging.getLogger(__name__)

DEMO_TOPICS = (*BAG_TOPICS, C.TOPIC_INSTRUCTION, C.TOPIC_BRAIN_STATUS, C.TOPIC_SIM_TASK, C.TOPIC_MARKERS)
"""What the demo records: the episode bag's topics plus the instruction, the brain's status and markers."""
RECORD_AT_START = (C.TOPIC_COLOR_IMAGE, C.TOPIC_EE_POSE, C.TOPIC_EE_TARGET, C.TOPIC_EXECUTION_STATUS)
"""Topics whose publishers already run when the demo starts recording (it waits for them to be subscribed)."""

STATE_NAMES = ("IDLE", "RUNNING", "SUCCEEDED", "FAILED", "HOLDING", "CANCELLED")


@dataclass
class DemoConfig:
    """Options of :func:`run_demo`."""

    seed: int = C.DEMO_SEED
    split: str = "seen"
    family: str = C.DEMO_FAMILY
    instruction: str = ""
    brain: str = "embedded"
    out: Path = Path("runs/demo")
    timeout_s: float = 120.0
    log_level: str = "warn"


def draw_frame(rgb: np.ndarray, plan: PlanData | None, status: tuple | None, t: float, scale: int = 3):  # noqa: ANN201
    """One GIF frame: the camera image scaled up, the active subtask's keypoints, a status line."""
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    img = Image.fromarray(rgb).resize((w * scale, h * scale), Image.NEAREST)
    canvas = Image.new("RGB", (w * scale, h * scale + 30), (20, 20, 20))
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    index = status[3] if status else 0
    line = f"t={t:5.1f}s"
    if plan is not None:
        for sub in plan.subtasks:
            active = sub.index == index
            for kp in sub.keypoints:
                if kp.u < 0:
                    continue
                x, y, r = kp.u * scale, kp.v * scale, 6 if active else 3
                colour = (255, 230, 0) if active else (150, 150, 150)
                draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=2)
                if active:
                    draw.text((x + r + 2, y - r), kp.name, fill=colour)
        code = plan.subtasks[index].code if index < len(plan.subtasks) else ""
        state = STATE_NAMES[min(status[4], len(STATE_NAMES) - 1)] if status else "PLANNED"
        line += f" rev{plan.revision} {index}:{code} {state}"
    draw.text((4, h * scale + 8), line[:70], fill=(240, 240, 240))
    return canvas


def write_gif(frames: list[tuple], path: Path, fps: float = 5.0) -> int:
    """Write the client's frames as an animated GIF; returns the number of frames."""
    if not frames:
        return 0
    images = [draw_frame(rgb, plan, status, t) for t, rgb, plan, status in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return len(images)


def run_demo(cfg: DemoConfig, say=print) -> int:  # noqa: ANN001 - print-like
    """Run the demo (see the module docstring); returns the exit code."""
    import rclpy

    from robo_common.ros.recorder import RecordConfig, TopicRecorder

    out = Path(cfg.out) / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    stack_cfg = StackConfig(brain=cfg.brain, seed=cfg.seed, split=cfg.split, family=cfg.family, log_dir=out / "logs",
                            log_level=cfg.log_level)
    t0 = time.monotonic()
    say(f"[demo] starting {', '.join(stack_cfg.executables())} as processes (logs: {out / 'logs'})")
    with StackProcesses(stack_cfg) as procs, rclpy.init():
        client = make_client(stack_cfg, on_event=lambda text: say(f"[demo] {text}"))
        recorder = None
        try:
            if cfg.brain != "oracle":
                state = client.wait_brain_ready(120.0, procs)
                if state in ("error", "no status"):
                    say(f"[demo] brain_node is not ready ({state}):\n{procs.log_tail('brain_node')}")
                    return 2
                say(f"[demo] brain ready after {time.monotonic() - t0:.1f} s")
            task = client.reset(cfg.seed, cfg.split, cfg.family, procs)
            objects = ", ".join(o.get("name", "?") for o in task.get("scene", {}).get("objects", []))
            say(f"[demo] task: {task['family']} (seed {cfg.seed}, {cfg.split}); objects: {objects}")
            instruction = cfg.instruction or task["instruction"]
            recorder = TopicRecorder(client, out / "bag", RecordConfig(topics=tuple(DEMO_TOPICS)))
            client.spin_until(lambda: set(RECORD_AT_START) <= recorder.topics, 5.0, procs)
            client.keep_frames = True
            trace = client.run(instruction, cfg.timeout_s, procs)
            client.keep_frames = False
        finally:
            counts = recorder.close() if recorder is not None else {}
            client.destroy_node()
    codes = procs.exit_codes  # stopped when the with-block closed
    gif = out / "episode.gif"
    n = write_gif(client.frames, gif)
    custom = bool(cfg.instruction) and cfg.instruction != task["instruction"]
    stack_ok = bool(trace.stack_success) if trace.stack_success is not None else bool(
        trace.statuses and trace.statuses[-1][4] == 2)  # the cerebellum's SUCCEEDED and the brain's goal check
    success = stack_ok if custom else bool(trace.success)
    summary = {
        "instruction": instruction, "task_instruction": task["instruction"], "success": bool(success),
        "simulator_success_check": trace.success, "end": trace.end_reason,
        "plans": [p.code_lines() for p in trace.plans],
        "corrections": max((p.revision for p in trace.plans), default=0),
        "failures": [f"{k} at subtask {i}: {d}" for _, k, i, d in trace.failures],
        "instruction_to_plan_s": trace.plan_s, "instruction_to_first_command_s": trace.first_command_s,
        "time_to_success_s": (trace.statuses[-1][0] - trace.sent_at) if success and trace.statuses else None,
        "stack_final": "SUCCEEDED" if stack_ok else "not SUCCEEDED",
        "early_releases": sum(k == "object_dropped" for _, k, _, _ in trace.failures),
        "failure_verdicts": [{"kind": f.get("kind"), "subtask": f.get("subtask"), "confirmed": f.get("confirmed")}
                             for f in trace.episode.get("failures", [])],
        "wall_s": time.monotonic() - t0, "bag": str(out / "bag"), "bag_messages": sum(counts.values()),
        "gif": str(gif), "gif_frames": n, "exit_codes": codes,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    say(f"[demo] episode over: {trace.end_reason}; corrections: {summary['corrections']}")
    if custom:
        say("[demo] custom instruction: success is the stack's own verdict (the plan ran to completion and the "
            "brain saw its goals hold; the simulator's check "
            f"belongs to the task's own instruction; it says {trace.success})")
    say(f"[demo] recorded {summary['bag_messages']} messages into {out / 'bag'}; {n} frames drawn into {gif}")
    say(f"[demo] instruction -> first command {trace.first_command_s}; total {summary['wall_s']:.0f} s; "
        f"nodes exited with {codes}")
    say(f"[demo] {'SUCCESS' if success else 'FAILURE'}: {instruction!r}")
    return 0 if success else 1
