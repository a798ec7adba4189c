"""The contract of robo_stack, below every other package: names, QoS choices, plan data and language,
camera model, geometry, task vocabulary, bags and ROS conversions (the ROS parts under ``ros``)."""

__version__ = "0.1.0"
