"""ROS 2 adapters shared by the nodes and tools: QoS profiles, message conversions, a topic recorder, checks.

Everything in this subpackage imports rclpy or generated messages; the ROS-free core
(``robo_common`` top level, ``robo_sim``, ``robo_brain``, ``robo_cerebellum`` models)
never imports it.
"""
