"""Training and evaluation data that needs the simulator (the brain's examples: :mod:`robo_system.datasets.brain`)."""
