"""`python -m srcnn.paper`: reproducing the paper's table, kept at this name for the commands in the docs and
the shipped records; the code is `srcnn.shipping.paper`."""

import sys

from srcnn.shipping.paper import main

if __name__ == "__main__":
    sys.exit(main())
