"""``python -m rvc_lab.cli`` == ``rvc-lab``."""
import sys

from rvc_lab.cli import main

sys.exit(main())
