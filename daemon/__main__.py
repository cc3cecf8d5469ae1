"""``python -m daemon`` is ``ai-band``."""

import sys

from daemon.cli import main

sys.exit(main())
