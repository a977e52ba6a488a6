"""Stage patches: data/raw → data/patches/{train,valid}.npy (bicubic-degraded Y crops + HR labels)."""

from pathlib import Path

from srcnn.patches import make_patch_sets
from srcnn.stage import run_stage

RAW = Path("data/raw")
PATCHES = Path("data/patches")


def main(params):
    counts = make_patch_sets(RAW, PATCHES, params)
    print(f"patches: {counts['train']} train and {counts['valid']} valid pairs in {PATCHES}")


if __name__ == "__main__":
    run_stage("patches", main)
