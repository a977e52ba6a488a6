"""Stage train: data/patches → models/srcnn.keras, metrics/train.json, curves in metrics/train_log."""

from pathlib import Path

from srcnn.stage import run_stage
from srcnn.training import train


def main(params):
    summary = train(
        train_path=Path("data/patches/train.npy"),
        valid_path=Path("data/patches/valid.npy"),
        model_path=Path("models/srcnn.keras"),
        log_dir=Path("metrics/train_log"),
        metrics_path=Path("metrics/train.json"),
        params=params,
        checkpoint_root=Path("data/checkpoints/train"),
    )
    print(f"train: {summary['epochs']} epochs in {summary['seconds']} s, val PSNR {summary['final_val_psnr']:.2f} dB")


if __name__ == "__main__":
    run_stage("train", main)
