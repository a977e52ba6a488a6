"""Stage download: HR photos → RAW/{train,valid}/*.png (offline sample, DIV2K or two folders).

python stages/download.py RAW        (dvc.yaml: python stages/download.py data/raw)
"""

import argparse
from pathlib import Path

from srcnn.data.sources import download
from srcnn.stage import run_stage


def main(params, args):
    counts = download(params.download, args.raw)
    print(f"download: {counts['train']} train and {counts['valid']} valid images in {args.raw}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("raw", type=Path, help="output folder: RAW/train and RAW/valid")
    run_stage("download", main, cli)
