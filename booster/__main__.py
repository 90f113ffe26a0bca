import sys

from booster.cli import main

sys.exit(main())
