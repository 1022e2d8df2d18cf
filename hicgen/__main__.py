import sys

from hicgen.cli import main

sys.exit(main())
