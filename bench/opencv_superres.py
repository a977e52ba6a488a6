"""OpenCV's `dnn_superres` models (the FSRCNN / FSRCNN-small / ESPCN files of ../shared/anchors) run as its users
run them, for bench.py's section i. Needs `cv2.dnn_superres`, which only opencv-contrib has: run it with the
bench environment's Python (`make bench-env`: bench/.venv, bench/requirements.txt), never the product's.

    bench/.venv/bin/python bench/opencv_superres.py serve
        first line out: {"ok": true, "opencv": "5.0.0"} or {"ok": false, "reason": "..."} (then it exits);
        then one JSON request a line on stdin, {"model": PB, "algo": "fsrcnn", "scale": 2, "image": PNG}, and
        one JSON answer a line, {"seconds": S, "width": W, "height": H}: one `upsample` of the image, timed
        (the model is read, and run once untimed, on its first request)
    bench/.venv/bin/python bench/opencv_superres.py upscale PB ALGO SCALE IN.png OUT.png
        the whole-command analogue of `srcnn upscale`: import, read the PNG, read the model, upsample, write

Only NumPy and OpenCV are imported (not srcnn). OpenCV's thread pool is sized to the CPUs this process may
use, as `srcnn.threads` sizes ONNX Runtime's.
"""

from __future__ import annotations

import json
import os
import sys
import time


def cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def opencv():
    """(cv2, None) when cv2.dnn_superres is there, else (None, the reason)."""
    try:
        import cv2
    except ImportError as err:
        return None, f"OpenCV is not installed in {sys.executable} ({err})"
    if not hasattr(cv2, "dnn_superres"):
        return None, (
            f"cv2 {cv2.__version__} in {sys.executable} has no dnn_superres (only opencv-contrib has it: "
            "`make bench-env`, then --anchors-python bench/.venv/bin/python)"
        )
    cv2.setNumThreads(cpus())
    return cv2, None


def read_model(cv2, path: str, algo: str, scale: int):
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    sr.readModel(path)
    sr.setModel(algo, int(scale))
    return sr


def serve() -> int:
    cv2, reason = opencv()
    print(json.dumps({"ok": True, "opencv": cv2.__version__} if cv2 else {"ok": False, "reason": reason}), flush=True)
    if cv2 is None:
        return 0
    models, images = {}, {}
    for line in sys.stdin:
        request = json.loads(line)
        key = (request["model"], request["algo"], request["scale"])
        image = images.get(request["image"])
        if image is None:
            image = images[request["image"]] = cv2.imread(request["image"], cv2.IMREAD_COLOR)
        if key not in models:
            models[key] = read_model(cv2, *key)
            models[key].upsample(image)  # warm-up: the first call creates the layers' primitives
        start = time.perf_counter()
        out = models[key].upsample(image)
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "width": out.shape[1], "height": out.shape[0]}), flush=True)
    return 0


def upscale(model: str, algo: str, scale: str, src: str, dst: str) -> int:
    cv2, reason = opencv()
    if cv2 is None:
        print(reason, file=sys.stderr)
        return 2
    image = cv2.imread(src, cv2.IMREAD_COLOR)
    out = read_model(cv2, model, algo, int(scale)).upsample(image)
    if not cv2.imwrite(dst, out):
        print(f"{dst}: cannot write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve())
    if sys.argv[1:2] == ["upscale"] and len(sys.argv) == 7:
        sys.exit(upscale(*sys.argv[2:]))
    sys.exit(__doc__)
