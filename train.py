"""Train a boundary detector.

    python train.py                                    # the generated default data, CPU or GPU
    python train.py --config configs/debug.yaml        # seconds, for a smoke test
    python train.py --data DIR [--val-data DIR] --run-dir runs/mine --set loss.kind=focal
    python train.py --run-dir runs/mine --resume       # continue after a kill or Ctrl-C
    torchrun --standalone --nproc_per_node=4 train.py --config configs/base.yaml --data DIR

Writes RUN_DIR/config.yaml, metrics.jsonl, last.pt, best.pt (thresholds tuned on validation) and
metrics.json. See ``boundaries train --help`` for every option.
"""

import sys

from boundaries import cli


def main(argv=None) -> int:
    return cli.main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
