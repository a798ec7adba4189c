"""Online replay over DDS: a bag player (like ``ros2 bag play``, with ``/clock``).

The only module of :mod:`robo_eval` that imports rclpy; the offline scorer never needs it. The
recorder (``robo-stack record``) is :mod:`robo_common.ros.recorder`: the demo records with it too.
"""
