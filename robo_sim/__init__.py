"""ROS-free PyBullet simulation core of robo_stack: world, scenes, tasks, scripted expert, evaluation."""
