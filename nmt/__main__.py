"""`python -m nmt` runs the command line."""
import sys

from nmt.cli import main

sys.exit(main())
