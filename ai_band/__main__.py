"""``python -m ai_band`` is ``ai-band``."""

import sys

from ai_band.cli import main

sys.exit(main())
