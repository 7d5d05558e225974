"""``python -m tune_jobs`` is the same as the ``cusp-tune`` command."""

import sys

from tune_jobs.cli import main

sys.exit(main())
