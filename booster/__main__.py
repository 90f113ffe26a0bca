import sys

from booster.ops.cli import main

sys.exit(main())
