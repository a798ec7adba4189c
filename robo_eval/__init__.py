"""Rosbag replay evaluation: score a brain or a cerebellum on recorded runs, offline and online.

ROS-free core (``bagread``, ``episode``, ``models``, ``metrics``, ``offline``, ``report``,
``lerobot_export``) reads rosbag2 with ``rosbags``; :mod:`robo_eval.ros` holds the DDS player for
online replay (the only module that imports rclpy; the recorder is :mod:`robo_common.ros.recorder`).
"""
