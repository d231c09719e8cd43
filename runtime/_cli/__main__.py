"""``python -m runtime._cli`` is the ``actorflow`` command."""

import sys

from runtime._cli import main

sys.exit(main())
