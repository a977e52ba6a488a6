"""Stage train: PATCHES/{train,valid}.npy → MODEL, METRICS (summary) and LOG_DIR (curves).

python stages/train.py PATCHES MODEL METRICS LOG_DIR [--checkpoints DIR]
(dvc.yaml: python stages/train.py data/patches models/srcnn.keras metrics/train.json metrics/train_log
 --checkpoints data/checkpoints/train)
"""

import argparse
from pathlib import Path

from srcnn.stage import run_stage
from srcnn.training.loop import train


def main(params, args):
    summary = train(
        train_path=args.patches / "train.npy",
        valid_path=args.patches / "valid.npy",
        model_path=args.model,
        log_dir=args.log_dir,
        metrics_path=args.metrics,
        params=params,
        checkpoint_root=args.checkpoints,
    )
    print(f"train: {summary['epochs']} epochs in {summary['seconds']} s, val PSNR {summary['final_val_psnr']:.2f} dB")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("patches", type=Path, help="input folder: PATCHES/train.npy and PATCHES/valid.npy")
    cli.add_argument("model", type=Path, help="output: the trained .keras model")
    cli.add_argument("metrics", type=Path, help="output: the summary metrics JSON")
    cli.add_argument("log_dir", type=Path, help="output: DVCLive curves per epoch")
    cli.add_argument(
        "--checkpoints", type=Path, default=None, help="folder of per-epoch checkpoints to resume from (none: off)"
    )
    run_stage("train", main, cli)
