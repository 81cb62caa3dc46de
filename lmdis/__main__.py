import sys

from lmdis.cli import main

sys.exit(main())
