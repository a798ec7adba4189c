"""The fast system: a Mamba (selective state-space) policy that streams SE(3) end-effector targets.

ROS-free core (config, features, model, policy, dataset, training, safety envelope, failure
monitor, plan executor, step-latency benchmark); ``node.py`` is the ROS 2 adapter. The closed loop
with a brain and the simulator is the system layer's (:mod:`robo_system.closed_loop`).
"""
