"""Stage download: HR photos → data/raw/{train,valid}/*.png (offline sample or DIV2K)."""

from pathlib import Path

from srcnn.sources import download
from srcnn.stage import run_stage

RAW = Path("data/raw")


def main(params):
    counts = download(params.download, RAW)
    print(f"download: {counts['train']} train and {counts['valid']} valid images in {RAW}")


if __name__ == "__main__":
    run_stage("download", main)
