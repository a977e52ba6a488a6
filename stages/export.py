"""Stage export: MODEL → ONNX, TFLite and SavedModel files with a model card, each checked against MODEL.

python stages/export.py MODEL VALID_PATCHES EVALUATION OUT_DIR METRICS
(dvc.yaml: python stages/export.py models/srcnn.keras data/patches/valid.npy metrics/evaluate.json
 models/export metrics/export.json)
"""

import argparse
from pathlib import Path

from srcnn.shipping.export import export_model
from srcnn.stage import run_stage


def main(params, args):
    figures = export_model(
        model_path=args.model,
        valid_path=args.valid,
        evaluation_path=args.evaluation,
        out_dir=args.out_dir,
        metrics_path=args.metrics,
        formats=params.export.formats,
    )
    for name, f in figures.items():
        for label, g in ((name, f), (f"{name} in OpenCV dnn", f.get("opencv_dnn"))):
            if g is not None:
                print(
                    f"export {label}: max |diff| {g['max_abs_diff']:.2g} on Y in [0, 1], "
                    f"{g['y8_pixels_differing']} of {g['pixels']} 8-bit pixels one level off"
                )
    print(f"export: {len(figures)} format(s) and MODEL_CARD.md in {args.out_dir}")


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("model", type=Path, help="input: the trained .keras model")
    cli.add_argument("valid", type=Path, help="input: the validation patch file, for the parity check")
    cli.add_argument("evaluation", type=Path, help="input: the evaluate stage's metrics JSON, for the model card")
    cli.add_argument("out_dir", type=Path, help="output folder: the exported files and MODEL_CARD.md")
    cli.add_argument("metrics", type=Path, help="output: parity figures per format (JSON)")
    run_stage("export", main, cli)
