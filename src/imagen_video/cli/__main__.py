import sys

from imagen_video.cli import main

sys.exit(main())
