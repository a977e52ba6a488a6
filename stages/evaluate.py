"""Stage evaluate: MODEL + VALID images + benchmark sets → PSNR/SSIM against bicubic, per image, and crops.

python stages/evaluate.py MODEL VALID BENCHMARKS METRICS PER_IMAGE CROPS
(dvc.yaml: python stages/evaluate.py models/srcnn.keras data/raw/valid data/benchmarks
 metrics/evaluate.json metrics/evaluate_per_image.csv metrics/crops)
"""

import argparse
import sys
from pathlib import Path

from srcnn.evaluation.evaluate import evaluate
from srcnn.evaluation.scores import below_bicubic
from srcnn.stage import run_stage


def main(params, args):
    summary = evaluate(
        model_path=args.model,
        valid_dir=args.valid,
        params=params,
        json_path=args.metrics,
        csv_path=args.per_image,
        crops_dir=args.crops,
        benchmarks_dir=args.benchmarks,
    )
    for name, s in summary.items():
        print(
            f"evaluate {name}: bicubic {s['psnr_bicubic']:.2f} dB, SRCNN {s['psnr_srcnn']:.2f} dB "
            f"({s['psnr_gain']:+.2f} dB), SSIM {s['ssim_bicubic']:.4f} -> {s['ssim_srcnn']:.4f} on {s['images']} images"
        )
    for loss in below_bicubic(summary):
        print(
            f"evaluate: WARNING: SRCNN is worse than bicubic ({loss}): {args.model} makes images worse than plain "
            "resizing; look at the training curve (dvc plots show) before using or exporting it",
            file=sys.stderr,
        )


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("model", type=Path, help="input: the trained .keras model")
    cli.add_argument("valid", type=Path, help="input: the validation images")
    cli.add_argument("benchmarks", type=Path, help="input: folder of benchmark sets, BENCHMARKS/<name> each")
    cli.add_argument("metrics", type=Path, help="output: metrics JSON per set")
    cli.add_argument("per_image", type=Path, help="output: CSV of every image's scores")
    cli.add_argument("crops", type=Path, help="output: folder of HR | bicubic | SRCNN crops")
    run_stage("evaluate", main, cli)
