"""`python -m l2t_core.eval …` is `l2t eval …`."""

import sys

from l2t_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
