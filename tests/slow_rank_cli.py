"""``imagen-video`` for torchrun in which rank 1 sleeps 3 s before every batch (uneven ranks in the tests)."""

from __future__ import annotations

import os
import sys
import time

from imagen_video.cascade.runner import Cascade
from imagen_video.cli import main

if os.environ.get("RANK") == "1":
    generate = Cascade.generate

    def slow_generate(self: Cascade, *args: object, **kwargs: object) -> object:
        """The cascade's generate, three seconds later."""
        time.sleep(3.0)
        return generate(self, *args, **kwargs)

    Cascade.generate = slow_generate  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
