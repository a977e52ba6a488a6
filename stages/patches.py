"""Stage patches: RAW/{train,valid} → PATCHES/{train,valid}.npy (bicubic-degraded Y crops + HR labels).

python stages/patches.py RAW PATCHES        (dvc.yaml: python stages/patches.py data/raw data/patches)
"""

import argparse
from pathlib import Path

from srcnn.data.patches import make_patch_sets
from srcnn.stage import run_stage


def main(params, args):
    counts = make_patch_sets(args.raw, args.patches, params)
    print(f"patches: {counts['train']} train and {counts['valid']} valid pairs in {args.patches}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("raw", type=Path, help="input folder: RAW/train and RAW/valid images")
    cli.add_argument("patches", type=Path, help="output folder: PATCHES/train.npy and PATCHES/valid.npy")
    run_stage("patches", main, cli)
