"""The brain (slow planner) of robo_stack.

A vision-language model turns an instruction and the camera image into a plan in a small,
whitelisted skill language (:mod:`robo_common.plan_language`), with keypoints lifted to 3D in
the robot base frame (:mod:`robo_brain.keypoints`). Model back-ends live in
:mod:`robo_brain.backends`; :mod:`robo_brain.planner` is the ROS-free core and
:mod:`robo_brain.node` the thin ROS 2 adapter (``brain_node``).
"""
