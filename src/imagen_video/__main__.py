"""``python -m imagen_video``: the ``imagen-video`` command line (e.g. under ``torchrun -m``)."""

import sys

from imagen_video.cli import main

sys.exit(main())
