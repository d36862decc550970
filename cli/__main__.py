import sys

from legacylake.main import main

sys.exit(main())
