import sys

from agentha.cli import main

sys.exit(main())
