"""A plan publisher of its own, for the ``plan_publisher_restart`` fault: a second process on ``/robo/plan``.

``python -m robo_system.faults.plan_publisher plan.json`` publishes the plan of ``plan.json``
(:meth:`PlanData.to_dict`) once on ``/robo/plan`` with the topic's latched QoS (reliable, transient
local, depth 1) and stays up, so a subscriber that joins later (a restarted cerebellum_node) gets it
from this process's writer, until SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from robo_common import constants as C
from robo_common.plan_types import PlanData


def main(argv: list[str] | None = None) -> None:
    """Publish the plan and spin until shut down."""
    from rclpy.node import Node
    from robo_stack.msg import Plan

    from robo_common.ros.conversions import plan_to_msg
    from robo_common.ros.qos import qos_for_topic
    from robo_common.ros.run import run_node

    argv = sys.argv[1:] if argv is None else argv
    plan = PlanData.from_dict(json.loads(Path(argv[0]).read_text()))

    class PlanPublisher(Node):
        def __init__(self) -> None:
            super().__init__("fault_plan_publisher")
            self.pub = self.create_publisher(Plan, C.TOPIC_PLAN, qos_for_topic(C.TOPIC_PLAN))
            self.pub.publish(plan_to_msg(plan))
            print(f"published plan {plan.plan_id} rev {plan.revision} ({len(plan.subtasks)} subtasks)", flush=True)

    run_node(PlanPublisher, argv[1:])


if __name__ == "__main__":
    main()
