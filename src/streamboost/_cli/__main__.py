"""``python -m streamboost._cli``: the ``streamboost`` command."""

import sys

from ._main import main

sys.exit(main())
