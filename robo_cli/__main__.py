"""``python -m robo_cli``: the same as the ``robo-stack`` command."""

import sys

from robo_cli.main import main

sys.exit(main())
