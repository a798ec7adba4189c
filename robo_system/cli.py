"""``robo-stack demo``, ``train brain``, ``train brain-lm``, ``eval brain``, ``eval grounding``,
``eval closed-loop``, ``eval correction`` and
``bench cerebellum``: the commands that compose brain, cerebellum and simulator (in one process or
as nodes over DDS)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from robo_common.cli import command_group
from robo_common.resources import resource_path
from robo_sim.catalog import PERTURB_MODES

LOG = logging.getLogger(__name__)
DEFAULT_CHECKPOINT = resource_path("models", "cerebellum")


def register_demo(sub: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    demo = sub.add_parser("demo", help="the closed-loop demo: sim_node + brain_node + cerebellum_node over DDS, "
                                       "one instruction, a rosbag and a GIF")
    demo.add_argument("--instruction", default="", help="instruction to send (default: the task's own)")
    demo.add_argument("--seed", type=int, default=100_001,
                      help="task seed loaded into the simulator (default: a scene the shipped models solve)")
    demo.add_argument("--split", choices=["seen", "unseen"], default="seen")
    demo.add_argument("--family", default="pick_place", help="task family: pick_place, stack, rearrange, push")
    demo.add_argument("--brain", default="embedded",
                      help="embedded (brain_node's default model), a transformers checkpoint folder, or oracle "
                           "(no brain_node: the simulator's expert plan)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (a run per time stamp)")
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds before giving up")
    demo.add_argument("--log-level", default="warn", help="log level of the nodes (their logs go to files)")
    demo.set_defaults(func=_demo)


def register_brain(sub: argparse._SubParsersAction) -> None:
    """Add ``train brain`` and ``eval brain`` (the embedded brain on the simulator's scenes)."""
    from robo_brain.embedded.cli import add_eval_arguments, add_train_arguments

    train = command_group(sub, "train", "train a model").add_parser(
        "brain", help="train the embedded brain model (ViT + GPT-2) on simulator scenes")
    add_train_arguments(train)
    train.set_defaults(func=_train_brain)
    ev = command_group(sub, "eval", "evaluate a model").add_parser(
        "brain", help="plan simulator scenes with the brain and compare with the expert plan")
    add_eval_arguments(ev)
    ev.set_defaults(func=_eval_brain)


def register_brain_lm(sub: argparse._SubParsersAction) -> None:
    """Add ``train brain-lm`` (the brain v2's LoRA adapter) and ``eval grounding`` (refusals, ungrounded names)."""
    t = command_group(sub, "train", "train a model").add_parser(
        "brain-lm", help="LoRA-tune the pretrained LM of the brain v2 on scene listings + reworded instructions")
    t.add_argument("--out", default="models/brain_lm",
                   help="checkpoint folder (resumed when it holds trainer_state.pt)")
    t.add_argument("--records", default="data/brain_lm/records_seen.jsonl",
                   help="scene records (rendered from the seen split where missing)")
    t.add_argument("--scenes", type=int, default=1600, help="seen-split seeds 0..N-1 (eval seeds start at 1e6)")
    t.add_argument("--steps", type=int, default=200)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--rank", type=int, default=16, help="LoRA rank (alpha = 2 x rank)")
    t.add_argument("--base", default="smollm2-135m-instruct", help="converted base (make setup)")
    t.add_argument("--max-minutes", type=float, default=0.0, help="stop (resumable) after this wall time")
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    t.add_argument("--corrections", default="data/brain_lm/corrections_seen.jsonl",
                   help="correction records (made in the simulator where missing, with --correction-episodes)")
    t.add_argument("--correction-episodes", type=int, default=0,
                   help="perturbed seen-split episodes (seeds 20000+) whose corrections are learned (0: none)")
    t.add_argument("--correction-prob", type=float, default=0.3, help="share of correction examples per batch")
    t.add_argument("--cerebellum", type=Path, default=DEFAULT_CHECKPOINT,
                   help="cerebellum checkpoint that runs the correction episodes")
    t.add_argument("--init-adapter", default="",
                   help="start from this adapter folder (e.g. models/brain_lm) instead of a new LoRA")
    t.add_argument("--correction-adapter-of", default="",
                   help="after training, make this adapter the corrections adapter of that checkpoint folder (--out "
                        "must be inside it): its first plans stay its own, its corrections come from --out")
    t.set_defaults(func=_train_brain_lm)
    g = command_group(sub, "eval", "evaluate a model").add_parser(
        "grounding", help="plan instructions that must be refused or grounded; count plans naming absent objects")
    g.add_argument("files", nargs="+", help="instruction files (one per line, '#' comments)")
    g.add_argument("--model", default=str(resource_path("models", "brain_lm")), help="brain checkpoint folder")
    g.add_argument("--split", choices=["seen", "unseen"], default="seen")
    g.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    g.add_argument("--json", type=Path, default=None, help="write the report (with every row) here")
    g.set_defaults(func=_eval_grounding)
    c = command_group(sub, "eval", "evaluate a model").add_parser(
        "brain-corrections", help="the brain v2's own corrections on simulator correction records, against the "
                                  "expert's answers (diagnosis and remaining steps)")
    c.add_argument("--model", default=str(resource_path("models", "brain_lm")), help="brain v2 checkpoint folder")
    c.add_argument("--records", default="data/brain_lm/corrections_unseen.jsonl",
                   help="correction records (made where missing, with --episodes)")
    c.add_argument("--episodes", type=int, default=100, help="perturbed episodes that make the records")
    c.add_argument("--split", choices=["seen", "unseen"], default="unseen")
    c.add_argument("--seed0", type=int, default=300_000, help="first seed (training used 20000+)")
    c.add_argument("--cerebellum", type=Path, default=DEFAULT_CHECKPOINT, help="cerebellum checkpoint")
    c.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    c.add_argument("--json", type=Path, default=None, help="write the report (with every row) here")
    c.set_defaults(func=_eval_brain_corrections)


def register_faults(sub: argparse._SubParsersAction) -> None:
    """Add ``check faults``."""
    from robo_system.faults import SCENARIOS

    p = command_group(sub, "check", "check the installation and the stack").add_parser(
        "faults", help="attack the stack over DDS, one fault per scenario; a table of expected vs measured")
    p.add_argument("--scenario", nargs="+", default=None, choices=list(SCENARIOS), help="scenarios (default: all)")
    p.add_argument("--trials", type=int, default=5, help="state_freeze trials (the hold latency's sample)")
    p.add_argument("--brain", default="embedded",
                   help="brain_node's model in the scenarios that start one (embedded: its default)")
    p.add_argument("--use-sim-time", default="both", choices=("both", "true", "false"),
                   help="state_freeze with simulated time, wall time or both")
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    p.add_argument("--log-dir", type=Path, default=Path("runs/faults"), help="node logs per scenario")
    p.set_defaults(func=_faults)


def _faults(args: argparse.Namespace) -> int:
    from robo_system.faults import rows_json, run_faults, table

    rows = run_faults(args.scenario, args.trials, args.use_sim_time, args.log_dir, brain=args.brain)
    sys.stdout.write(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows_json(rows), indent=2))
    failed = [r.scenario for r in rows if not r.passed]
    names = f": {', '.join(failed)}" if failed else ""
    sys.stdout.write(f"fault scenarios: {len(rows) - len(failed)} passed, {len(failed)} failed{names}\n")
    return 1 if failed else 0


def register_closed_loop(sub: argparse._SubParsersAction) -> None:
    """Add ``eval closed-loop``, ``eval correction``, ``bench cerebellum``, ``bench cancel`` and ``bench soak``."""
    evals = command_group(sub, "eval", "evaluate a model")
    ev = evals.add_parser("closed-loop", help="closed-loop success in the simulator: a brain plans and corrects, "
                                              "the cerebellum executes")
    _closed_loop_arguments(ev)
    ev.add_argument("--perturb", nargs="*", default=[], metavar="MODE",
                    help="also run this many episodes per mode: grasp_offset nudge slip wrong_keypoint")
    ev.add_argument("--no-correction", action="store_true", help="end an episode at the first detected failure")
    ev.add_argument("--ros", action="store_true",
                    help="run sim_node, brain_node and cerebellum_node as processes over DDS (sim_node injects "
                         "the perturbations)")
    ev.add_argument("--ros-stacks", type=int, default=1,
                    help="with --ros: run this many stacks side by side, each in its own ROS domain (where the "
                         "cores allow; 2 cores: 1)")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(func=_eval)

    cv = evals.add_parser("correction", help="the value of correction: perturbed episodes with and without it")
    _closed_loop_arguments(cv, episodes=25)
    cv.add_argument("--perturb", nargs="+", default=list(PERTURB_MODES), metavar="MODE",
                    help="perturbation modes (default: all)")
    cv.add_argument("--markdown", type=Path, default=None, help="also write the results table here")
    cv.add_argument("--ros", action="store_true", help="run the episodes as nodes over DDS (sim_node perturbs them)")
    cv.add_argument("--ros-stacks", type=int, default=1, help="with --ros: stacks side by side, own ROS domains")
    cv.add_argument("--json", action="store_true", help="print the report as JSON")
    cv.set_defaults(func=_eval_correction)

    bench = command_group(sub, "bench", "benchmarks").add_parser(
        "cerebellum", help="per-step latency vs a KV-cache transformer, and the node's loop rate")
    bench.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    bench.add_argument("--steps", type=int, default=10_050,
                       help="steps of one episode to time (the step-10 000 window needs 10 050)")
    bench.add_argument("--repeats", type=int, default=100,
                       help="steps timed from each mark's saved state, marks interleaved (0: the one pass only)")
    bench.add_argument("--node-seconds", type=float, default=20.0, help="how long to measure the node (0: skip)")
    bench.add_argument("--no-brain", action="store_true",
                       help="measure the node beside sim_node only (default: brain_node loaded beside them)")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=_bench)
    bc = command_group(sub, "bench", "benchmarks").add_parser(
        "cancel", help="time from /robo/cancel to the first held /robo/ee_target (sim_node + cerebellum_node)")
    bc.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    bc.add_argument("--trials", type=int, default=20)
    bc.add_argument("--json", action="store_true")
    bc.set_defaults(func=_bench_cancel)
    bs = command_group(sub, "bench", "benchmarks").add_parser(
        "soak", help="sim_node + cerebellum_node over DDS for M minutes, episodes back to back (oracle plans): "
                     "RSS, CPU, fds and threads per node, /robo/ee_target inter-arrival p99 per minute, plans lost")
    bs.add_argument("--minutes", type=float, default=10.0, help="how long to run episodes (default 10)")
    bs.add_argument("--sample-s", type=float, default=10.0, help="seconds between /proc samples (default 10)")
    bs.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="cerebellum checkpoint folder")
    bs.add_argument("--seed0", type=int, default=400_000, help="seed of the first episode (then +1 each)")
    bs.add_argument("--split", choices=["seen", "unseen"], default="seen")
    bs.add_argument("--log-dir", type=Path, default=Path("runs/soak"), help="the nodes' logs")
    bs.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    bs.add_argument("--plot", type=Path, default=None, help="write the plot (PNG) here")
    bs.add_argument("--json", action="store_true", help="print the JSON report (else a summary)")
    bs.set_defaults(func=_bench_soak)


def _closed_loop_arguments(p: argparse.ArgumentParser, episodes: int = 100) -> None:
    p.add_argument("--brain", default="embedded",
                   help="oracle (the scripted expert's plans), embedded (brain_node's default, models/brain_lm) or "
                        "a checkpoint folder (models/brain_embedded: the first embedded brain)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="cerebellum checkpoint folder")
    p.add_argument("--episodes", type=int, default=episodes, help="clean episodes (and per perturbation mode)")
    p.add_argument("--split", choices=["seen", "unseen"], default="seen")
    p.add_argument("--seed0", type=int, default=100_000, help="first seed (training used lower seeds)")
    p.add_argument("--family", action="append", default=None, metavar="FAMILY",
                   help="only this task family (repeatable; default: pick_place, stack, rearrange, push in turn)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-corrections", type=int, default=3, help="revised plans per episode")
    p.add_argument("--timeout", type=float, default=60.0, help="simulated seconds per episode")
    p.add_argument("--failure-threshold", type=float, default=1.0,
                   help="learned failure probability that, held 3 steps, counts as a failure (1.0: head off)")
    p.add_argument("--no-verify", action="store_true",
                   help="take the cerebellum's SUCCEEDED as the stack's verdict (no look at the goals in the image)")
    p.add_argument("--correction", choices=["auto", "prompt", "replan"], default="auto",
                   help="the brain's correction mode (auto: prompt when the model learned corrections, else replan)")
    p.add_argument("--lockstep-period", type=float, default=0.05, metavar="S",
                   help="with --ros: sim_node waits for the cerebellum's step at every S simulated seconds "
                        "(sim.launch.py's default); 0: the simulator runs in real time")


def _closed_loop_setup(args: argparse.Namespace):  # noqa: ANN202 - (BrainSpec, ClosedLoopConfig)
    from robo_cerebellum.policy import CerebellumPolicy
    from robo_system.closed_loop import BrainSpec, ClosedLoopConfig

    CerebellumPolicy.load(args.checkpoint)
    brain = replace(BrainSpec.parse(args.brain), correction=args.correction)
    cfg = ClosedLoopConfig(failure_threshold=args.failure_threshold, timeout_s=args.timeout,
                           max_corrections=args.max_corrections,
                           correction=not getattr(args, "no_correction", False), verify=not args.no_verify,
                           lockstep_period_s=args.lockstep_period)
    return brain, cfg


def _eval(args: argparse.Namespace) -> int:
    from robo_cerebellum.policy import CheckpointError
    from robo_system.closed_loop import evaluate

    try:
        brain, cfg = _closed_loop_setup(args)
        if args.ros:
            from robo_system.stack import evaluate_ros

            result = evaluate_ros(args.checkpoint, brain, args.episodes, args.split, args.seed0, cfg,
                                  stacks=args.ros_stacks, perturb=args.perturb, families=args.family)
        else:
            result = evaluate(args.checkpoint, args.episodes, args.split, args.perturb, args.seed0, args.workers,
                              cfg, brain=brain, families=args.family)
    except (CheckpointError, ValueError, RuntimeError) as exc:
        LOG.error("%s", exc)
        return 2
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return 0
    for fam, rate in result["success_rate"].items():
        sys.stdout.write(f"{fam:12s} {rate:6.1%}\n")
    sys.stdout.write(f"{'overall':12s} {result['overall_success']:6.1%} ({result['episodes']} episodes, brain "
                     f"{result['brain']}, {result['corrections']} corrections)\n")
    det = result.get("failure_detection")
    if det:
        sys.stdout.write(f"failure detection: precision {det['precision']}, recall {det['recall']}\n")
    ver = result.get("verdict")
    if ver and ver["episodes"]:
        sys.stdout.write(f"final status = world in {ver['agreement']:.1%} of {ver['episodes']} episodes (SUCCEEDED "
                         f"but failed: {ver['succeeded_but_world_failure']}, FAILED but succeeded: "
                         f"{ver['failed_but_world_success']})\n")
    return 0


def _eval_correction(args: argparse.Namespace) -> int:
    from robo_cerebellum.policy import CheckpointError
    from robo_system.closed_loop import correction_table, correction_value

    try:
        brain, cfg = _closed_loop_setup(args)
        unknown = sorted(set(args.perturb) - set(PERTURB_MODES))
        if unknown:
            raise ValueError(f"unknown perturbation mode(s) {unknown}; known: {list(PERTURB_MODES)}")
        result = correction_value(args.checkpoint, brain, args.episodes, args.split, args.perturb, args.seed0,
                                  args.ros_stacks if args.ros else args.workers, cfg, ros=args.ros,
                                  families=args.family)
    except (CheckpointError, ValueError, RuntimeError) as exc:
        LOG.error("%s", exc)
        return 2
    table = correction_table(result)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else table)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from robo_cerebellum.policy import CheckpointError
    from robo_system.bench import run_benchmark

    try:
        result = run_benchmark(args.checkpoint, args.steps, args.node_seconds, args.repeats, not args.no_brain)
    except (CheckpointError, RuntimeError) as exc:
        LOG.error("%s", exc)
        return 2
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else _bench_text(result))
    return 0


def _bench_cancel(args: argparse.Namespace) -> int:
    from robo_system.bench_cancel import cancel_latency

    try:
        r = cancel_latency(args.checkpoint, args.trials)
    except RuntimeError as exc:
        LOG.error("%s", exc)
        return 2
    text = (f"cancel -> first held /robo/ee_target over {r['trials']} trials: p50 {r['p50_ms']:.2f} ms, "
            f"p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.2f} ms; "
            f"control period p50 {r['control_period_p50_ms']:.2f} ms "
            f"(p99 {r['control_period_p99_ms']:.2f} ms); {r['within_one_period']}/{r['trials']} within one period; "
            f"{r['trials_with_a_moving_target_after_the_hold']} trials with a target that moved after the hold\n")
    sys.stdout.write(json.dumps(r, indent=2) + "\n" if args.json else text)
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    from robo_system.soak import run_soak, summary, write

    try:
        result = run_soak(args.minutes, args.sample_s, args.seed0, args.split, log_dir=args.log_dir,
                          checkpoint=str(args.checkpoint))
    except (RuntimeError, FileNotFoundError) as exc:
        LOG.error("soak failed: %s", exc)
        return 2
    write(result, args.out, args.plot)
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else summary(result))
    return 0 if result["verdict"]["ok"] else 1


def _bench_text(result: dict) -> str:
    lines = []
    for model, steps in result["step_ms"].items():
        cells = ", ".join(f"step {k}: p50 {v['p50']:.2f} ms p99 {v['p99']:.2f} ms" for k, v in steps.items())
        lines.append(f"{model}: {cells}; flatness {result['flatness'][model]:.2f}")
    if result.get("loop_hz") is not None:
        lines.append(f"node loop {result['loop_hz']:.1f} Hz, period p99 {result['period_p99_ms']:.2f} ms"
                     + (" (brain_node beside)" if result.get("with_brain") else ""))
        if result.get("node_policy_steps_per_s") is not None:
            lines.append(f"policy in the node: {result['node_policy_steps_per_s']:.1f} steps/s, step p50 "
                         f"{result['node_policy_step_p50_ms']} ms, p99 {result['node_policy_step_p99_ms']} ms")
    return "\n".join(lines) + "\n"


def _demo(args: argparse.Namespace) -> int:
    from robo_system.demo import DemoConfig, run_demo

    cfg = DemoConfig(seed=args.seed, split=args.split, family=args.family, instruction=args.instruction,
                     brain=args.brain, out=args.out, timeout_s=args.timeout, log_level=args.log_level)
    try:
        return run_demo(cfg)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        LOG.error("demo failed: %s", exc)
        return 2


def _train_brain(args: argparse.Namespace) -> int:
    from robo_brain.embedded.cli import run_train
    from robo_system.datasets.brain import SIM_EXAMPLES

    return run_train(args, SIM_EXAMPLES)


def _train_brain_lm(args: argparse.Namespace) -> int:
    from robo_brain.lm.train import LMTrainConfig, train
    from robo_system.datasets.brain_lm import build_records

    records = build_records(args.records, range(args.scenes), "seen")
    corrections = []
    if args.correction_episodes > 0:
        from robo_system.datasets.corrections import build_corrections, correction_stats

        corrections = build_corrections(args.corrections, args.cerebellum, args.correction_episodes)
        LOG.info("correction records: %s", json.dumps(correction_stats(corrections)))
    cfg = LMTrainConfig(out=args.out, base=args.base, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                        rank=args.rank, max_minutes=args.max_minutes, threads=args.threads,
                        correction_prob=args.correction_prob if corrections else 0.0, init_adapter=args.init_adapter)
    if args.correction_adapter_of:
        owner = Path(args.correction_adapter_of)
        if Path(args.out).resolve().parent != owner.resolve() or not (owner / "brain_lm.json").is_file():
            LOG.error("--correction-adapter-of %s: --out must be a folder directly inside a brain v2 checkpoint "
                      "folder, got --out %s", owner, args.out)
            return 2
    print(json.dumps(train(cfg, records, corrections=corrections)))
    if args.correction_adapter_of:
        config_file = Path(args.correction_adapter_of) / "brain_lm.json"
        config = json.loads(config_file.read_text())
        config_file.write_text(json.dumps({**config, "correction_adapter": Path(args.out).name}, indent=1) + "\n")
        LOG.info("%s now takes its corrections from %s", args.correction_adapter_of, args.out)
    return 0


def _eval_brain_corrections(args: argparse.Namespace) -> int:
    import torch

    from robo_brain.lm.backend import LMPlannerBackend
    from robo_system.datasets.corrections import build_corrections, evaluate_corrections

    records = build_corrections(args.records, args.cerebellum, args.episodes, args.split, seed0=args.seed0)
    torch.set_num_threads(args.threads)
    report = evaluate_corrections(LMPlannerBackend(args.model), records)
    report.update(model=args.model, split=args.split, records_file=args.records)
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def _eval_grounding(args: argparse.Namespace) -> int:
    import torch

    from robo_brain.backends import BackendConfig, make_backend
    from robo_brain.planner import Planner
    from robo_system.datasets.refusals import evaluate_grounding

    torch.set_num_threads(args.threads)
    planner = Planner(make_backend(BackendConfig(backend="transformers", model_path=args.model)))
    report = evaluate_grounding(planner, args.files, args.split)
    for path, r in report["files"].items():
        print(f"{path}: {r['instructions']} instructions, {r['refused']} refused, {r['planned']} planned, "
              f"{r['plans_with_ungrounded_names']} plans naming an object the scene does not have")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0 if all(r["plans_with_ungrounded_names"] == 0 for r in report["files"].values()) else 1


def _eval_brain(args: argparse.Namespace) -> int:
    from robo_brain.embedded.cli import run_eval
    from robo_system.datasets.brain import evaluate_brain

    return run_eval(args, evaluate_brain)
