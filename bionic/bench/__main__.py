"""`python -m bionic.bench`, the same as `python -m bionic bench`."""

import sys

from bionic.bench import main

sys.exit(main())
