"""Online replay over DDS: a bag player (like ``ros2 bag play``, with ``/clock``) and a recorder.

The only modules of :mod:`robo_eval` that import rclpy; the offline scorer never needs them.
"""
