import sys

from leadd.cli import main

sys.exit(main())
