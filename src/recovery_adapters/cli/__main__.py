"""``python -m recovery_adapters.cli``."""

import sys

from recovery_adapters.cli.app import main

sys.exit(main())
