import sys

from pgjax.commands.cli import main

sys.exit(main())
