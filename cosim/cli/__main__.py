"""``python -m cosim.cli``: the ``nmpu`` command."""
import sys

from . import main

sys.exit(main())
