"""``robo-stack eval bag``, ``robo-stack replay``, ``robo-stack record``, ``robo-stack export lerobot``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from robo_common.cli import command_group
from robo_common.resources import resource_path

LOG = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the rosbag evaluation commands."""
    ev = command_group(sub, "eval", "evaluate a model").add_parser(
        "bag", help="score a model offline on recorded rosbag2 runs (mcap or sqlite3)")
    ev.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="bag directories or folders of bags")
    ev.add_argument("--model", choices=["cerebellum", "brain", "recorded"], default="cerebellum",
                    help="recorded: the bag's own commands (the metric's floor) or --candidate's")
    ev.add_argument("--checkpoint", type=Path, default=None,
                    help="model folder (default: models/cerebellum or models/brain_embedded)")
    ev.add_argument("--brain-backend", choices=["transformers", "scripted"], default="transformers",
                    help="brain: a transformers checkpoint, or a scripted answers file as --checkpoint")
    ev.add_argument("--candidate", type=Path, default=None,
                    help="with --model recorded: a bag recorded from live nodes during `robo-stack replay`")
    ev.add_argument("--topic-map", type=Path, default=None, help="YAML mapping another robot's topics/frames to ours")
    ev.add_argument("--offset-cm", type=float, nargs=3, default=None, metavar=("DX", "DY", "DZ"),
                    help="shift every predicted target by this offset (a metric sanity check)")
    ev.add_argument("--offset-deg", type=float, default=0.0, help="turn every predicted target about base z")
    ev.add_argument("--mode", choices=["parallel", "recurrent"], default="parallel",
                    help="cerebellum: one parallel pass per bag (fast), or step by step like the node "
                         "(per-step latency)")
    ev.add_argument("--failure-threshold", type=float, default=None, help="learned failure probability threshold")
    ev.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ev.add_argument("--report", type=Path, default=None, metavar="DIR", help="write report.json, summary.md, plots")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(func=_eval_bag)

    rp = sub.add_parser("replay", help="publish a bag's topics on DDS at recorded timing with /clock (online replay)")
    rp.add_argument("bag", type=Path, metavar="PATH", help="bag directory")
    rp.add_argument("--rate", type=float, default=1.0, help="playback speed (1: recorded timing)")
    rp.add_argument("--topics", nargs="+", default=None, metavar="TOPIC", help="play only these (our names)")
    rp.add_argument("--exclude", nargs="+", default=[], metavar="TOPIC", help="never play these")
    rp.add_argument("--inputs-only", action="store_true",
                    help="play only camera, state, plan and instruction topics (evaluate live nodes' outputs)")
    rp.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    rp.add_argument("--clock-hz", type=float, default=100.0, help="/clock rate between messages")
    rp.add_argument("--start-delay", type=float, default=1.0, help="seconds for discovery before the first message")
    rp.add_argument("--wait-for", nargs="+", default=[], metavar="TOPIC",
                    help="wait until each of these topics has a subscriber before playing")
    rp.add_argument("--topic-map", type=Path, default=None, help="YAML mapping the bag's topics/frames to ours")
    rp.add_argument("--json", action="store_true", help="print what was played as JSON")
    rp.set_defaults(func=_replay)

    rc = sub.add_parser("record", help="record live topics into a rosbag2 (for the offline scorer)")
    rc.add_argument("out", type=Path, metavar="OUT", help="bag directory to create")
    rc.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="topics to record")
    rc.add_argument("--all", action="store_true", help="record every topic that appears")
    rc.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    rc.add_argument("--use-sim-time", action="store_true", help="stamp with /clock time (during a replay)")
    rc.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: Ctrl-C)")
    rc.add_argument("--idle-timeout", type=float, default=0.0,
                    help="stop this many seconds after the last message (0: never)")
    rc.add_argument("--flush", type=float, default=1.0,
                    help="write buffered messages out this often, in s: a killed recorder loses at most that (0: off)")
    rc.set_defaults(func=_record)

    ex = command_group(sub, "export", "export recorded data").add_parser(
        "lerobot", help="bags to a LeRobot dataset (v3.0 layout: parquet data, embedded images, meta/)")
    ex.add_argument("bags", nargs="+", type=Path, metavar="BAG", help="bag directories or folders of bags")
    ex.add_argument("out", type=Path, metavar="OUT", help="dataset root to create")
    ex.add_argument("--fps", type=int, default=None, help="frame rate of the common clock (default: command rate)")
    ex.add_argument("--robot-type", default="franka_panda", help="info.json robot_type")
    ex.add_argument("--topic-map", type=Path, default=None, help="YAML mapping another robot's topics/frames to ours")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    ex.add_argument("--json", action="store_true", help="print the summary as JSON")
    ex.set_defaults(func=_export_lerobot)


def _model(args: argparse.Namespace, topic_map: object):  # noqa: ANN202 - StepModel | BrainModel
    import numpy as np

    from robo_eval.models import CerebellumModel, OffsetModel, RecordedModel

    if args.model == "brain":
        from robo_eval.brain import BrainModel

        return BrainModel.load(args.checkpoint or resource_path("models", "brain_embedded"), args.brain_backend)
    if args.model == "recorded":
        model = RecordedModel(args.candidate, topic_map)
    else:
        model = CerebellumModel.load(args.checkpoint or resource_path("models", "cerebellum"), args.failure_threshold,
                                     args.mode)
    if args.offset_cm is not None or args.offset_deg:
        model = OffsetModel(model, np.asarray(args.offset_cm or (0, 0, 0), float) / 100.0, args.offset_deg)
    return model


def _eval_bag(args: argparse.Namespace) -> int:
    import torch

    from robo_eval.bagread import TopicMap
    from robo_eval.offline import evaluate_bags
    from robo_eval.report import write_report

    torch.set_num_threads(max(1, args.threads))
    if args.candidate is not None and args.model != "recorded":
        LOG.error("--candidate needs --model recorded")
        return 2
    try:
        topic_map = TopicMap.load(args.topic_map) if args.topic_map else None
        model = _model(args, topic_map)
    except (OSError, ValueError, RuntimeError) as exc:
        LOG.error("%s", exc)
        return 2
    result = evaluate_bags(args.paths, model, topic_map, progress=sys.stderr.isatty())
    summary = result.summary()
    if args.report:
        paths = write_report(result, args.report, "robo-stack " + " ".join(sys.argv[1:]))
        LOG.info("report written: %s", ", ".join(str(p) for p in paths.values()))
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "per_bag"}, indent=2))
    else:
        print(f"{summary['model']}: {summary.get('bags_scored', 0)} bag(s) scored, {summary['bags_failed']} failed; "
              f"translation error median {summary.get('translation_error_cm_median')} cm, rotation "
              f"{summary.get('rotation_error_deg_median')} deg, realtime factor {summary.get('realtime_factor')}")
        for failed in summary["failed"]:
            print(f"FAILED {failed['error']}")
    return 1 if result.failed or not (result.scores or result.brain_scores) else 0


def _export_lerobot(args: argparse.Namespace) -> int:
    from robo_eval.bagread import TopicMap
    from robo_eval.lerobot_export import export_lerobot

    try:
        topic_map = TopicMap.load(args.topic_map) if args.topic_map else None
        summary = export_lerobot(args.bags, args.out, args.fps, args.robot_type, topic_map, args.overwrite,
                                 progress=sys.stderr.isatty())
    except (OSError, ValueError) as exc:
        LOG.error("%s", exc)
        return 1
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(f"{summary.out}: {summary.episodes} episodes, {summary.frames} frames at {summary.fps} fps, "
              f"{summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s; {len(summary.failed)} bag(s) failed")
        for failed in summary.failed:
            print(f"FAILED {failed['error']}")
    return 1 if summary.failed else 0


def _replay(args: argparse.Namespace) -> int:
    from robo_eval.bagread import BagError, TopicMap
    from robo_eval.ros.player import PlayConfig, play_bag

    try:
        cfg = PlayConfig(rate=args.rate, topics=tuple(args.topics) if args.topics else None,
                         exclude=tuple(args.exclude), inputs_only=args.inputs_only, clock=not args.no_clock,
                         clock_hz=args.clock_hz, start_delay_s=args.start_delay, wait_for=tuple(args.wait_for))
        topic_map = TopicMap.load(args.topic_map) if args.topic_map else None
        result = play_bag(args.bag, cfg, topic_map)
    except (BagError, OSError, ValueError) as exc:
        LOG.error("%s", exc)
        return 1
    if args.json:
        print(json.dumps(result.__dict__, indent=2))
    else:
        print(f"played {result.messages} messages ({result.bag_duration_s:.2f} s of bag) in {result.wall_s:.2f} s, "
              f"{result.clock_messages} /clock messages")
    return 0


def _record(args: argparse.Namespace) -> int:
    from robo_common.ros.recorder import RecordConfig, record

    try:
        cfg = RecordConfig(topics=tuple(args.topics), all_topics=args.all, storage=args.storage,
                           use_sim_time=args.use_sim_time, duration_s=args.duration, idle_timeout_s=args.idle_timeout,
                           flush_s=args.flush)
        counts = record(args.out, cfg)
    except (OSError, ValueError) as exc:
        LOG.error("%s", exc)
        return 1
    print(json.dumps({"out": str(args.out), "messages": counts}))
    return 0
