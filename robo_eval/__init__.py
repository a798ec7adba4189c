"""Rosbag replay evaluation: score a brain or a cerebellum on recorded runs, offline and online.

ROS-free core (``bagread``, ``episode``, ``models``, ``metrics``, ``offline``, ``report``,
``lerobot_export``) reads rosbag2 with ``rosbags``; :mod:`robo_eval.ros` holds the DDS player and
recorder for online replay (the only modules that import rclpy).
"""
