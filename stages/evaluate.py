"""Stage evaluate: models/srcnn.keras + valid split + benchmark sets → PSNR/SSIM vs bicubic, crops."""

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
    for name, s in summary.items():
        print(
            f"evaluate {name}: bicubic {s['psnr_bicubic']:.2f} dB, SRCNN {s['psnr_srcnn']:.2f} dB "
            f"({s['psnr_gain']:+.2f} dB), SSIM {s['ssim_bicubic']:.4f} -> {s['ssim_srcnn']:.4f} on {s['images']} images"
        )


if __name__ == "__main__":
    run_stage("evaluate", main)
