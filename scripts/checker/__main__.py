"""``python -m scripts.checker HISTORY.jsonl``: check a drill history."""

import sys

from .checker import main

sys.exit(main())
