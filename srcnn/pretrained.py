"""`python -m srcnn.pretrained`: the shipped models, kept at this name for the commands in the docs and the shipped
records; the code is `srcnn.shipping.pretrained`."""

import sys

from srcnn.shipping.pretrained import main

if __name__ == "__main__":
    sys.exit(main())
