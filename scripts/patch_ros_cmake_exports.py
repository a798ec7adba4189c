"""Make the ROS 2 wheels' CMake exports point at this machine's Python.

The Kilted wheels were built in a manylinux container; their exported CMake targets
(``share/<pkg>/cmake/*Export.cmake``) name that container's Python include directory
and NumPy include directory as ``INTERFACE_INCLUDE_DIRECTORIES``. CMake refuses
imported targets with non-existent include paths, so ``rosidl_generate_interfaces``
fails. This rewrites those paths, inside the given prefix only, to the running
interpreter's include directory and the installed NumPy's. Idempotent.

Usage: python patch_ros_cmake_exports.py PREFIX
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

# The build container's interpreter root, e.g. /opt/python/cp311-cp311
_FOREIGN_ROOT = re.compile(r"/opt/python/cp3\d+-cp3\d+t?")


def _replacements() -> list[tuple[re.Pattern[str], str]]:
    import numpy

    py_include = sysconfig.get_paths()["include"]
    if not (Path(py_include) / "Python.h").exists():
        raise SystemExit(
            f"Python.h not found in {py_include}: install the Python development headers "
            f"(Debian: apt-get install python3-dev) for this interpreter ({sys.executable})"
        )
    root = _FOREIGN_ROOT.pattern
    return [
        (re.compile(root + r"/lib/python3\.\d+/site-packages/numpy/_core/include"), numpy.get_include()),
        (re.compile(root + r"/lib/python3\.\d+/site-packages/numpy/core/include"), numpy.get_include()),
        (re.compile(root + r"/include/python3\.\d+"), py_include),
    ]


def patch_prefix(prefix: Path) -> list[Path]:
    """Rewrite foreign Python paths in ``prefix/share/*/cmake/*.cmake``; return the files changed."""
    changed = []
    rules = _replacements()
    for path in sorted(prefix.glob("share/*/cmake/*.cmake")):
        text = path.read_text()
        if not _FOREIGN_ROOT.search(text):
            continue
        new = text
        for pattern, repl in rules:
            new = pattern.sub(repl.replace("\\", "\\\\"), new)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main() -> int:
    """Patch the prefix given on the command line and report what changed."""
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    prefix = Path(sys.argv[1]).resolve()
    if not (prefix / "share" / "rosidl_cmake").is_dir():
        print(f"{prefix} is not a ROS 2 prefix (share/rosidl_cmake missing)", file=sys.stderr)
        return 1
    changed = patch_prefix(prefix)
    print(f"patched {len(changed)} CMake export file(s) under {prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
