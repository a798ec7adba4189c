"""Shared, ROS-free pieces of robo_stack: names, QoS choices, plan data and the CLI."""

__version__ = "0.1.0"
