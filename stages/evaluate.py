"""Stage evaluate: models/srcnn.keras + data/raw/valid → PSNR/SSIM of SRCNN vs bicubic, crops."""

from pathlib import Path

from srcnn.evaluation import evaluate
from srcnn.stage import run_stage


def main(params):
    summary = evaluate(
        model_path=Path("models/srcnn.keras"),
        valid_dir=Path("data/raw/valid"),
        params=params,
        json_path=Path("metrics/evaluate.json"),
        csv_path=Path("metrics/evaluate_per_image.csv"),
        crops_dir=Path("metrics/crops"),
    )
    print(
        f"evaluate: bicubic {summary['psnr_bicubic']:.2f} dB, SRCNN {summary['psnr_srcnn']:.2f} dB "
        f"({summary['psnr_gain']:+.2f} dB) on {summary['images']} images"
    )


if __name__ == "__main__":
    run_stage("evaluate", main)
