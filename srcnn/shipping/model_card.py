"""The model card written next to the exports (`models/export/MODEL_CARD.md`): what the model is, what it was
trained on and with, how it scores, its conventions and limits, and how to run each format in three lines.

Everything in it comes from the model's metadata (`srcnn.nets.model_file.make_metadata`), `metrics/evaluate.json`
and the export stage's parity figures, so it is regenerated, never edited.
"""

from __future__ import annotations

from srcnn.nets.archs import ARCHS
from srcnn.nets.metadata import geometry_of, white_of

RUN_SNIPPETS = {
    "onnx": (
        "ONNX Runtime",
        """import onnxruntime
session = onnxruntime.InferenceSession("srcnn.onnx")  # NCHW in and out: (1, 1, h, w)
y_sr = session.run(None, {session.get_inputs()[0].name: y.transpose(0, 3, 1, 2)})[0]""",
    ),
    "onnx-opencv": (
        "OpenCV dnn",
        """import cv2
net = cv2.dnn.readNetFromONNX("srcnn.onnx")
net.setInput(cv2.dnn.blobFromImage(y[0])); y_sr = net.forward()  # blobFromImage: (h, w, 1) → (1, 1, h, w)""",
    ),
    "tflite": (
        "LiteRT (TFLite)",
        """from ai_edge_litert.interpreter import Interpreter
it = Interpreter("srcnn.tflite"); i = it.get_input_details()[0]["index"]; it.resize_tensor_input(i, y.shape)
it.allocate_tensors(); it.set_tensor(i, y); it.invoke(); y_sr = it.get_tensor(it.get_output_details()[0]["index"])""",
    ),
    "savedmodel": (
        "TensorFlow SavedModel (TF Serving: signature serving_default)",
        """import tensorflow as tf
model = tf.saved_model.load("srcnn_savedmodel")
y_sr = model.serve(y).numpy()""",
    ),
}


def _srcnn_text(meta: dict, top: int) -> tuple[str, list[str], list[str]]:
    """Title, "What it is" and the first "Conventions" lines of an SRCNN's card."""
    p, scale, margin, resize = meta["params"], meta["scale"], meta["margin"], meta["resize"]
    layers = " → ".join(
        f"{k}×{k}×{n} ReLU" for n, k in zip(p["model"]["filters"], p["model"]["kernel_sizes"], strict=False)
    )
    title = f"# SRCNN ×{scale}, {'-'.join(map(str, p['model']['kernel_sizes']))}"
    what = [
        "SRCNN (Dong, Loy, He and Tang, *Image Super-Resolution Using Deep Convolutional Networks*, ECCV 2014 /",
        f"TPAMI 2016): {layers} → {p['model']['kernel_sizes'][-1]}×{p['model']['kernel_sizes'][-1]}×1, valid",
        f"convolutions, receptive field {meta['receptive_field']}×{meta['receptive_field']} pixels. It sharpens "
        f"an image already upscaled ×{scale} bicubically; only the luma (Y) goes through the network.",
    ]
    conventions = [
        f"- Input `y`: float32, the Y channel ({meta['colour']}) divided by {top}, of the image upscaled ×{scale}",
        f"  with the `{resize}` bicubic kernel first; n, h and w are free.",
        f"- Output: float32, Y / {top} of the high-resolution image, h − {2 * margin} × w − {2 * margin}, not clipped.",
        f"  To keep the size, pad `y` symmetrically by {margin} pixels first (as `srcnn upscale` does).",
        "- Layout, each format's convention (the `layout` entry of its metadata): ONNX is NCHW, input",
        f"  (n, 1, h, w) and output (n, 1, h − {2 * margin}, w − {2 * margin}), as `cv2.dnn.blobFromImage`, PyTorch",
        f"  and the ONNX model zoo use; TFLite and the SavedModel are NHWC, (n, h, w, 1) → (n, h − {2 * margin},",
        f"  w − {2 * margin}, 1). With one channel both hold the same bytes: `y.transpose(0, 3, 1, 2)` copies nothing.",
    ]
    return title, what, conventions


def _lr_text(meta: dict, top: int) -> tuple[str, list[str], list[str]]:
    """Title, "What it is" and the first "Conventions" lines of a network on the LR image (FSRCNN, ESPCN)."""
    arch = ARCHS[meta["arch"]]
    g, scale, resize = geometry_of(meta), meta["scale"], meta["resize"]
    hyper = {k: v for k, v in meta["params"]["model"].items() if k != "arch"}
    name = arch.title.split(" (")[0]
    c, skip = g.context, scale * g.context - g.left
    title = f"# {name} ×{scale}, " + ", ".join(f"{k} {v}" for k, v in hyper.items())
    what = [
        f"{arch.title}, {', '.join(f'{k} = {v}' for k, v in hyper.items())}: valid convolutions on the",
        f"low-resolution image's luma (Y), upscaled ×{scale} by the network itself; "
        f"{arch.multiply_adds(scale, hyper):,.0f} multiply-adds per output pixel.",
        "Cb and Cr are upscaled bicubically.",
    ]
    conventions = [
        f"- Input `y`: float32, the Y channel ({meta['colour']}) divided by {top}, of the low-resolution image",
        f"  itself (the image to enlarge; trained on `{resize}` bicubic downscales); n, h and w are free.",
        f"- Output: float32, Y / {top} of the high-resolution image, {scale}·h − {g.left + g.right} × "
        f"{scale}·w − {g.left + g.right}, not clipped: its first pixel is",
        f"  pixel {g.left} of the ×{scale} grid. For exactly {scale}·h × {scale}·w, pad `y` symmetrically by {c} "
        f"pixels and keep output rows and columns from {skip} (as `srcnn upscale` does).",
        "- Layout, each format's convention (the `layout` entry of its metadata): ONNX is NCHW, input (n, 1, h, w),",
        "  as `cv2.dnn.blobFromImage`, PyTorch and the ONNX model zoo use; TFLite and the SavedModel are NHWC,",
        "  (n, h, w, 1). With one channel both hold the same bytes: `y.transpose(0, 3, 1, 2)` copies nothing.",
    ]
    return title, what, conventions


def model_card(meta: dict, evaluation: dict, exports: dict[str, dict], files: dict[str, str]) -> str:
    """Markdown text. `meta`: the model's metadata; `evaluation`: metrics/evaluate.json ({set: scores});
    `exports`: {format: parity figures} (`srcnn.shipping.export.parity`); `files`: {format: file name}."""
    p = meta["params"]
    scale, resize = meta["scale"], meta["resize"]
    top = white_of(meta)
    at = ", PSNR at 65535 where a set says peak 65535" if any(e.get("peak") for e in evaluation.values()) else ""
    title, what, conventions = (_srcnn_text if geometry_of(meta) is None else _lr_text)(meta, top)
    lines = [
        title,
        "",
        "Generated by the `export` stage from `models/srcnn.keras`, `metrics/evaluate.json` and the export's",
        "parity check; `dvc repro export` rewrites it.",
        "",
        "## What it is",
        "",
        *what,
        f"Package {meta['package']} {meta['version']}.",
        "",
        "## Training",
        "",
        f"- seed {p['seed']}, scale ×{scale}, degradation: bicubic downscaling with the `{resize}` kernel",
        "  (`matlab`: MATLAB `imresize` with antialiasing; `opencv`: `cv2.resize` INTER_CUBIC)",
        "- " + ", ".join(f"{k} {v}" for k, v in p["train"].items()),
        *(
            [
                f"- computed in {meta['training_precision']} (Keras dtype policy)"
                + (f", the last {final} epochs in float32" if (final := p["train"].get("float32_final_epochs")) else "")
                + ", weights float32"
            ]
            if "training_precision" in meta
            else []
        ),
        "- data: the `download` stage's training images, cut into patches by the `patches` stage (see",
        "  `params.yaml` and `dvc.lock` of the revision that produced this model)",
        "",
        f"## Evaluation (`metrics/evaluate.json`, PSNR/SSIM on Y, borders shaved{at})",
        "",
        "| set | images | PSNR bicubic | PSNR SRCNN | gain | SSIM bicubic | SSIM SRCNN |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in evaluation.items():
        lines.append(
            f"| {name} | {s['images']} | {s['psnr_bicubic']:.2f} dB | {s['psnr_srcnn']:.2f} dB | "
            f"{s['psnr_gain']:+.2f} dB | {s['ssim_bicubic']:.4f} | {s['ssim_srcnn']:.4f} |"
        )
    lines += [
        "",
        "## Conventions",
        "",
        *conventions,
        "- Colour: Cb and Cr are upscaled bicubically; convert back with the exact inverse (MATLAB `ycbcr2rgb`).",
        "- The full pipeline for a photo, with tiling for any size: `srcnn upscale photo.jpg -o out.png --model`",
        "  with any of the files below.",
        "",
        "## Limits",
        "",
        f"- One factor (×{scale}) and one degradation (bicubic, `{resize}` kernel): blur, noise or JPEG artefacts",
        "  it has not seen are kept or sharpened, not removed.",
        (
            "- A 3-layer network: well below recent super-resolution models in PSNR; a baseline, not a restorer."
            if geometry_of(meta) is None  # SRCNN's card keeps its bytes
            else "- A small network: well below recent super-resolution models in PSNR; a baseline, not a restorer."
        ),
        "- Trained on natural photos; text, drawings and medical or satellite images are out of its domain.",
        "",
        "## Files and how to run them",
        "",
        "Each file computes what the Keras model computes, checked on the validation patches by the export stage:",
        "",
        "| format | file | max abs. difference (Y in [0, 1]) | 8-bit Y pixels one level off |",
        "|---|---|---:|---:|",
    ]
    for name, f in exports.items():
        for label, g in ((name, f), (f"{name} (OpenCV dnn)", f.get("opencv_dnn"))):
            if g is not None:
                figures = f"{g['max_abs_diff']:.2g} | {g['y8_pixels_differing']} of {g['pixels']}"
                lines.append(f"| {label} | `{files[name]}` | {figures} |")
    lines += ["", "`y` below is float32 (1, h, w, 1), NHWC, as in Conventions; the ONNX recipes pass it NCHW.", ""]
    shown = [k for k in RUN_SNIPPETS if k.split("-")[0] in exports]
    for key in shown:
        title, code = RUN_SNIPPETS[key]
        lines += [f"{title}:", "", "```python", code, "```", ""]
    if not shown:
        lines += ["No format was exported (`export.formats` is empty).", ""]
    return "\n".join(lines)
