"""The fast system: a Mamba (selective state-space) policy that streams SE(3) end-effector targets.

ROS-free core (config, features, model, policy, dataset, training, safety envelope, failure
monitor, plan executor, closed-loop evaluation, benchmark); ``node.py`` is the ROS 2 adapter.
"""
