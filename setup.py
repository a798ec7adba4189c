"""pip packaging of robo_stack's Python packages (training, evaluation, tests, CLI).

The ROS 2 package itself (messages, node executables, launch and config files) is built
by CMakeLists.txt; `make setup` builds the messages into the virtual environment and
installs these packages editable.
"""

from setuptools import find_packages, setup

setup(
    # Not "robo-stack": that distribution name belongs to the generated message package
    # (robo_stack-*.egg-info, installed by CMake), and pip would uninstall it.
    name="robo-stack-py",
    version="0.1.0",
    description="A hierarchical fast/slow robot control stack on ROS 2",
    license="Apache-2.0",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["robo_*", "robo_*.*"], exclude=["tests", "tests.*"]),
    package_data={"": ["*.yaml", "*.json"]},
    install_requires=["numpy", "PyYAML"],
    entry_points={"console_scripts": ["robo-stack = robo_cli.main:main"]},
)
