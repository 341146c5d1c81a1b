"""``python -m dgmbench ...``: the same as the ``dgmbench`` command."""
import sys

from dgmbench.cli import main

sys.exit(main())
