"""A plan as RViz / Foxglove markers (``/robo/markers``): keypoint spheres and the plan as text."""

from __future__ import annotations

from geometry_msgs.msg import Point
from visualization_msgs.msg import Marker, MarkerArray

from robo_common.plan_types import PlanData

_KP_COLOURS = {"grasp": (0.1, 0.9, 0.1), "place": (0.1, 0.4, 1.0), "push_start": (1.0, 0.6, 0.0),
               "push_end": (1.0, 0.2, 0.2), "goal": (0.8, 0.2, 0.9)}


def plan_markers(plan: PlanData, stamp) -> MarkerArray:  # noqa: ANN001 - builtin_interfaces/Time
    """Markers of a plan: DELETEALL, a sphere and a label per keypoint, and the plan as text."""
    out = MarkerArray(markers=[Marker(action=Marker.DELETEALL)])

    def marker(kind: int, ns: int, mid: int) -> Marker:
        m = Marker(type=kind, action=Marker.ADD, ns=ns, id=mid)
        m.header.frame_id, m.header.stamp = plan.frame_id, stamp
        m.pose.orientation.w = 1.0
        m.color.a = 1.0
        return m

    n = 0
    for sub in plan.subtasks:
        for kp in sub.keypoints:
            sphere = marker(Marker.SPHERE, "keypoints", n)
            sphere.pose.position = Point(x=kp.point[0], y=kp.point[1], z=kp.point[2])
            sphere.scale.x = sphere.scale.y = sphere.scale.z = 0.02
            sphere.color.r, sphere.color.g, sphere.color.b = _KP_COLOURS.get(kp.name, (1.0, 1.0, 1.0))
            label = marker(Marker.TEXT_VIEW_FACING, "labels", n)
            label.pose.position = Point(x=kp.point[0], y=kp.point[1], z=kp.point[2] + 0.04)
            label.scale.z = 0.02
            label.color.r = label.color.g = label.color.b = 1.0
            label.text = f"{sub.index}: {kp.name}"
            out.markers += [sphere, label]
            n += 1
    text = marker(Marker.TEXT_VIEW_FACING, "plan", 0)
    text.pose.position = Point(x=0.5, y=0.0, z=0.5)
    text.scale.z = 0.03
    text.color.r = text.color.g = text.color.b = 1.0
    text.text = f"{plan.instruction}\nrev {plan.revision}\n" + "\n".join(plan.code_lines())
    out.markers.append(text)
    return out
