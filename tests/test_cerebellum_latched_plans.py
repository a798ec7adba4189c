"""A late-joining cerebellum gets the latched plan of every live publisher, in no defined order: the newest wins."""

from __future__ import annotations

from robo_cerebellum.latched_plans import LatchedPlanFilter
from robo_common import constants as C
from robo_common.ros.qos import qos_for_topic


def test_an_older_plan_of_another_publisher_is_ignored_in_either_order() -> None:
    newer_first = LatchedPlanFilter()
    assert newer_first.check("stop-1", 20_000_000_000, 100.0) == ""
    why = newer_first.check("plan-a", 10_000_000_000, 100.1)
    assert "plan plan-a ignored" in why and "older than plan stop-1" in why
    older_first = LatchedPlanFilter()
    assert older_first.check("plan-a", 10_000_000_000, 100.0) == ""
    assert older_first.check("stop-1", 20_000_000_000, 100.1) == ""  # newer: taken, replaces plan-a


def test_after_the_window_and_for_unstamped_plans_arrival_order_rules() -> None:
    f = LatchedPlanFilter(window_s=2.0)
    assert f.check("plan-a", 50_000_000_000, 10.0) == ""
    assert f.check("stop-0", 0, 10.5) == ""  # unstamped: never compared
    assert f.check("plan-b", 1_000_000_000, 13.0) == ""  # a restarted robot clock later on: taken
    assert f.check("plan-c", 2_000_000_000, 13.1) == ""  # ...and the newest is now plan-b's stamp
    assert f.check("plan-a", 40_000_000_000, 13.2) == ""  # revisions of one plan are the executor's to order


def test_the_plan_topic_stays_one_latched_sample_per_publisher() -> None:
    # the cerebellum's reader keeps 10 (node.py) so that several publishers' latched plans all arrive; the
    # writers' QoS is unchanged: depth is not part of QoS matching, reliability and durability are
    qos = qos_for_topic(C.TOPIC_PLAN)
    assert qos.depth == 1 and qos.durability.name == "TRANSIENT_LOCAL" and qos.reliability.name == "RELIABLE"
