"""Score a trained checkpoint on held-out annotated clips.

    python evaluate.py --checkpoint runs/default/best.pt --data DIR [--out plots/] [--json m.json]

Prints a per-file table with the mean over files and the naive all-negative model beside it;
``--json`` writes every figure (schema in the README).
"""

import sys

from boundaries import cli


def main(argv=None) -> int:
    return cli.main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
