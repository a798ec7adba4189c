"""The system layer of robo_stack: brain, cerebellum and simulator composed.

Above the three independent packages (:mod:`robo_brain`, :mod:`robo_cerebellum`, :mod:`robo_sim`)
and below :mod:`robo_eval` and the command line. Here the closed loop runs in one process
(:mod:`robo_system.closed_loop`) and as node processes over DDS (:mod:`robo_system.stack`,
:mod:`robo_system.demo`), the cerebellum's node loop is measured beside the simulator
(:mod:`robo_system.bench`), and training data for the brain is rendered from the simulator
(:mod:`robo_system.datasets`).
"""
