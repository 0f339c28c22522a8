import sys

from analytics.growth.cli import main

sys.exit(main())
