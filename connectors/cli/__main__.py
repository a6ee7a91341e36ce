"""``python -m connectors.cli``."""

import sys

from connectors.cli import main

sys.exit(main())
