"""Faults, for real: stages killed mid-write, and bad input images.

Kills: each of the four stages is started by `dvc repro` in a temporary git +
DVC repo (tiny params, the killed stage made long enough to be caught at work)
and its process group gets SIGINT (Ctrl-C) or SIGKILL once a temporary output
has appeared (train: once an epoch's checkpoint is saved, i.e. mid-training).
Afterwards every output the stage declares in dvc.yaml is absent
or byte for byte what it was before (DVC itself deletes a stage's outputs
before running it), no temporary name sits inside a directory output, any left
beside an output (SIGKILL only) is git-ignored, and a following `dvc repro`
completes, sweeps them and leaves `dvc status` clean.

Images: each bad or unusual file in data/raw is run through the real
`stages/patches.py` and `stages/evaluate.py` in a scratch folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

# pytest puts tests/ on sys.path: the temp-repo helpers of the pipeline test.
from conftest import (
    PROJECT,
    TINY,
    dvc,
    env,
    in_mount_namespace,
    needs_unshare,
    project_repo,
    run,
    stage_command,
    write_params,
)

from srcnn.outputs import atomic_dir, atomic_file, sweep_stale_temps

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it

TEMP_NAME = re.compile(r"^\..+\.\d+\.[^.]+\.tmp(\..*)?$")  # srcnn.data.io's temporary names
DIR_OUTS = ("data/raw", "metrics/crops", "metrics/train_log")
CHECKPOINTS = "data/checkpoints/train"  # the train stage's cache: not an output, git-ignored


def where_allowed(repo: Path, path: Path, outputs: list[str]) -> bool:
    """A temporary left by SIGKILL may sit beside an output, or in the checkpoint cache."""
    return any(path.parent == (repo / name).parent for name in outputs) or (repo / CHECKPOINTS) in path.parents


# --------------------------------------------------------------------------- helpers


def temps(root: Path) -> list[Path]:
    """Every temporary name under root, outside .git and .dvc (not looking inside a temporary folder)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found += [Path(dirpath, name) for name in dirnames + filenames if TEMP_NAME.match(name)]
        dirnames[:] = [d for d in dirnames if d not in (".git", ".dvc") and not TEMP_NAME.match(d)]
    return found


def snapshot(path: Path) -> dict[str, str] | None:
    """sha256 of a file, or of every file of a folder by relative path; None when absent."""
    if path.is_file():
        return {"": hashlib.sha256(path.read_bytes()).hexdigest()}
    if path.is_dir():
        return {
            str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*"))
            if p.is_file()
        }
    return None


def declared_outputs(stage: str) -> list[str]:
    spec = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"][stage]
    names = []
    for entry in spec.get("outs", []) + spec.get("metrics", []):
        names.append(entry if isinstance(entry, str) else next(iter(entry)))
    return names


def params_with(overrides: dict) -> dict:
    """TINY merged with per-stage overrides (nested dicts)."""
    merged = json.loads(json.dumps(TINY))
    for section, values in overrides.items():
        if isinstance(values, dict):
            merged.setdefault(section, {}).update(values)
        else:
            merged[section] = values
    return merged


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    project_repo(root, TINY)
    return root


# --------------------------------------------------------------------------- kills

# Per stage: params that keep it busy long enough, and "it has started writing".
LONG = {
    "download": {},  # 20 PNGs; caught as soon as the first lands in the temporary folder
    "patches": {"patches": {"per_image": 20000}},  # ~4 s; the file is a sparse memmap
    "train": {"train": {"epochs": 500}},
    "evaluate": {},
}


def writing(repo: Path, stage: str) -> bool:
    if stage == "download":
        return any(any(d.rglob("*.png")) for d in (repo / "data").glob(".raw.*.tmp"))
    if stage == "patches":  # the memmap exists, and its first images have been cropped into it
        found = list((repo / "data/patches").glob(".train.npy.*.tmp.npy"))
        if found and found[0].stat().st_size > 0:
            time.sleep(0.5)
            return True
        return False
    if stage == "train":  # an epoch is done: its checkpoint is saved (outputs are written only at the end)
        return any((repo / CHECKPOINTS).glob("*/epoch-*/state.json"))
    return any(any(d.glob("*.png")) for d in (repo / "metrics").glob(".crops.*.tmp"))


def members(pgid: int) -> list[int]:
    """Processes of a process group (dvc and the stage it runs), from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getpgid(int(entry.name)) == pgid:
                pids.append(int(entry.name))
        except ProcessLookupError:
            pass
    return pids


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def default_sigint() -> None:
    """In the child before exec: Ctrl-C's default action. A shell starting a background job (`cmd &`, as a CI
    runner may) sets SIGINT to ignored, exec keeps that, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_and_kill(repo: Path, stage: str, sig: int, direct: bool = False) -> tuple[int, str]:
    """`dvc repro -f -s stage` (or the stage script itself) in its own process group; signal the group once
    the stage is writing."""
    log = repo.parent / f"{repo.name}-{stage}-{sig}-{direct}.log"
    # A checkpoint left by an earlier kill of the same params would read as "this run is training" at once
    # (and would be resumed from: tests/test_checkpoints.py covers that).
    shutil.rmtree(repo / CHECKPOINTS, ignore_errors=True)
    command = stage_command(stage) if direct else [str(Path(sys.executable).parent / "dvc"), "repro", "-f", "-s", stage]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command,
            cwd=repo,
            env=env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_sigint,
        )
    try:
        deadline = time.monotonic() + 120
        while not writing(repo, stage):
            assert proc.poll() is None, f"{stage} ended before it could be killed:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{stage} never started writing:\n{log.read_text()}"
            time.sleep(0.002)
        group = members(proc.pid)
        os.killpg(proc.pid, sig)
        code = proc.wait(timeout=60)
        deadline = time.monotonic() + 30  # SIGKILL orphans the stage: wait until the kernel has ended it
        while any(alive(pid) for pid in group) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return code, log.read_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
@pytest.mark.parametrize("stage", ["download", "patches", "train", "evaluate"])
def test_killed_stage_leaves_previous_outputs_or_none(repo, stage, sig):
    if json.loads(dvc(repo, "status", "--json").stdout) != {}:  # an earlier test failed half-way
        dvc(repo, "repro")
    outputs = declared_outputs(stage)
    before = {name: snapshot(repo / name) for name in outputs}
    assert all(before.values()), "the fixture's first run should have written every output"
    write_params(repo, params_with(LONG[stage]))
    try:
        code, log = start_and_kill(repo, stage, sig)

        assert code != 0
        if sig == signal.SIGINT:
            assert f"stage {stage} interrupted" in log
            assert "Traceback" not in log, log
        for name in outputs:
            assert snapshot(repo / name) in (None, before[name]), f"{name} is partial or changed after the kill"
        for folder in DIR_OUTS:  # where DVC would hash a stray temporary
            assert temps(repo / folder) == []
        left = temps(repo)
        if sig == signal.SIGINT:
            assert left == [], f"SIGINT left temporaries: {left}"
        elif stage != "train":  # train is killed mid-training: its outputs are written only at the end
            assert left, "SIGKILL mid-write should leave the temporary being written"
        for path in left:  # SIGKILL: only beside an output (or a checkpoint), and invisible to git
            assert where_allowed(repo, path, outputs), path
            assert run(repo, "git", "check-ignore", "-q", str(path.relative_to(repo)), check=False).returncode == 0
        untracked = run(repo, "git", "status", "--porcelain", "--untracked-files=all").stdout
        assert ".tmp" not in untracked, untracked
    finally:
        write_params(repo, TINY)

    # DVC may restore the outputs from its run cache without running the stage: temporaries stay, ignored.
    dvc(repo, "repro")
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}
    assert set(temps(repo)) <= set(left)
    if left:  # the next real run of the stage sweeps what the dead process left
        dvc(repo, "repro", "-f", "-s", stage)
        assert temps(repo) == [], "the rerun should have swept the dead process's temporaries"
        dvc(repo, "repro")  # downstream of a retrained model
        assert json.loads(dvc(repo, "status", "--json").stdout) == {}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
@pytest.mark.parametrize("stage", ["download", "patches", "train", "evaluate"])
def test_killed_stage_outside_dvc_keeps_the_previous_outputs(repo, stage, sig):
    """Run as a plain script, nothing deletes the outputs first: they must survive the kill byte for byte."""
    if json.loads(dvc(repo, "status", "--json").stdout) != {}:
        dvc(repo, "repro")
    outputs = declared_outputs(stage)
    before = {name: snapshot(repo / name) for name in outputs}
    write_params(repo, params_with(LONG[stage]))
    try:
        code, log = start_and_kill(repo, stage, sig, direct=True)
    finally:
        write_params(repo, TINY)
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), log
    if sig == signal.SIGINT:
        assert log.strip().splitlines()[-1] == f"stage {stage} interrupted; no partial output was kept"
        assert "Traceback" not in log
    for name in outputs:
        assert snapshot(repo / name) == before[name], f"{name} changed after the kill"
    left = temps(repo)
    if stage != "train":  # train is killed mid-training: its outputs are written only at the end
        assert bool(left) == (sig == signal.SIGKILL), left
    for path in left:
        assert sig == signal.SIGKILL and where_allowed(repo, path, outputs), path
        shutil.rmtree(path) if path.is_dir() else path.unlink()  # the sweep has its own test
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}


# --------------------------------------------------------------------------- stale temporaries


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_next_write_sweeps_temporaries_of_dead_processes(tmp_path):
    target, folder = tmp_path / "train.npy", tmp_path / "crops"
    pid = dead_pid()
    stale = [
        tmp_path / f".train.npy.{pid}.k3j_x.tmp.npy",
        tmp_path / f".crops.{pid}.ab12.tmp",
        tmp_path / f".crops.{pid}.old.tmp",
    ]
    stale[0].write_bytes(b"half")
    for d in stale[1:]:
        d.mkdir()
        (d / "a.png").write_bytes(b"half")
    live = tmp_path / f".train.npy.{os.getpid()}.zz9.tmp.npy"  # a writer still at work: kept
    live.write_bytes(b"busy")
    unrelated = [tmp_path / ".train.npy.notes", tmp_path / f".train.npy.x.{pid}.ab.tmp", tmp_path / "train.npy.bak"]
    for path in unrelated:
        path.write_bytes(b"mine")

    with atomic_file(target, suffix=".npy") as tmp:
        tmp.write_bytes(b"new")
    assert not stale[0].exists() and stale[1].exists()  # a file write sweeps its own target's only
    with atomic_dir(folder) as tmp:
        (tmp / "b.png").write_bytes(b"new")

    assert not any(p.exists() for p in stale)
    assert live.exists() and all(p.exists() for p in unrelated)
    assert target.read_bytes() == b"new" and os.listdir(folder) == ["b.png"]
    assert sweep_stale_temps(target) == []


def test_an_output_not_to_replace_is_never_replaced_even_if_it_appears_during_the_work(tmp_path):
    """Issue 42, case 1: `atomic_file(replace=False)` (`srcnn upscale` without --overwrite, `srcnn.load().
    upscale_file`) published with a rename, which replaced a file another process wrote while this one
    worked. Through `output_file`, the writer that `srcnn.inference.files` uses."""
    from srcnn.data.io import output_file

    target = tmp_path / "photo.png"
    for writer in (lambda: atomic_file(target, replace=False), lambda: output_file(target, replace=False)):
        target.unlink(missing_ok=True)
        with pytest.raises(FileExistsError) as raised, writer() as tmp:
            tmp.write_bytes(b"mine")
            target.write_bytes(b"the other process's")  # appears after any check made before the work
        assert raised.value.filename == str(target)
        assert target.read_bytes() == b"the other process's"
        assert os.listdir(tmp_path) == ["photo.png"]  # no temporary
    target.unlink()
    with atomic_file(target, replace=False) as tmp:  # a free name: written as ever
        tmp.write_bytes(b"mine")
    assert target.read_bytes() == b"mine" and os.listdir(tmp_path) == ["photo.png"]


def test_a_write_error_names_the_output_and_an_input_error_its_input(tmp_path):
    """Issue 42, case 4: an OSError while writing an output (here a folder that is a file: ENOTDIR, which stops
    root too) is OutputError naming the output; one about another file (an input read inside the block) keeps
    its own name and type."""
    from srcnn.outputs import OutputError

    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError, match=r"^.*file/sub/x\.npy: cannot write: not a directory; nothing was written$"):
        with atomic_file(tmp_path / "file/sub/x.npy"):
            pass
    with pytest.raises(OutputError, match=r"/crops: cannot write: file too large; nothing was written$"):
        with atomic_dir(tmp_path / "crops") as tmp:
            raise OSError(27, "File too large", str(tmp / "a.png"))  # as a write inside the folder raises it
    with pytest.raises(FileNotFoundError), atomic_file(tmp_path / "out.npy"):
        (tmp_path / "missing.png").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_git_ignores_temporary_names(repo):
    names = [
        "data/.raw.123.ab_c.tmp",
        "data/patches/.train.npy.123.x1.tmp.npy",
        "models/.srcnn.keras.9.q.tmp.keras",
        "metrics/.crops.77.old.tmp",
        "metrics/.train.json.5.z.tmp",
    ]
    result = run(repo, "git", "check-ignore", "--no-index", *names, check=False)
    assert sorted(result.stdout.split()) == sorted(names)
    kept = run(repo, "git", "check-ignore", "--no-index", "metrics/train.json", "data/raw.tmp.md", check=False)
    assert kept.stdout == ""


# --------------------------------------------------------------------------- bad images


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(
    pixels: np.ndarray, colour_type: int, palette: np.ndarray | None = None, alpha: np.ndarray | None = None
) -> bytes:
    """An 8-bit PNG built by hand (OpenCV writes neither palette nor gray + alpha)."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).astype(np.uint8)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0))
    if palette is not None:
        out += _chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if alpha is not None:
        out += _chunk(b"tRNS", alpha.astype(np.uint8).tobytes())
    idat = zlib.compress(b"".join(b"\x00" + row.tobytes() for row in rows))
    return out + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def photo(h: int = 96, w: int = 112) -> np.ndarray:
    from skimage import data as skdata

    return skdata.astronaut()[100 : 100 + h, 150 : 150 + w]  # RGB


def encode(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB(A) or gray uint8/uint16 array, through OpenCV."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def palette_image() -> tuple[bytes, np.ndarray]:
    """A P-mode PNG (16 colours) and the RGB image it stands for."""
    rng = np.random.default_rng(3)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    indices = (photo()[:, :, 1] // 16).astype(np.uint8)
    return png_bytes(indices, 3, palette=palette), palette[indices]


GOOD = encode(photo())

# name: (file bytes, fragment of the error message). Every one is refused, naming the file.
REFUSED = {
    "corrupt": (GOOD[:40] + bytes(range(256)) * 8, "not a readable image"),
    "truncated": (GOOD[: len(GOOD) // 2], "not a readable image"),
    "empty": (b"", "empty file"),
    "text": (b"these are my notes, not a picture\n", "not a readable image"),
    # 16-bit files among 8-bit ones in data/raw/ (download writes one depth; a hand-edited folder can mix):
    "deep16": (encode(photo().astype(np.uint16) * 257), "uint16 pixels among uint8 images; use one depth"),
    "gray16": (encode(photo()[:, :, 0].astype(np.uint16) * 257), "uint16 pixels among uint8 images; use one depth"),
}


def scratch(tmp_path: Path, train: dict[str, bytes], valid: dict[str, bytes], model: Path | None = None) -> Path:
    """A folder laid out like the project: dvc.yaml, params.yaml, data/raw/{train,valid}, optionally the model."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_params(tmp_path, TINY)
    shutil.copy(PROJECT / "dvc.yaml", tmp_path / "dvc.yaml")
    for split, files in (("train", train), ("valid", valid)):
        folder = tmp_path / "data/raw" / split
        folder.mkdir(parents=True)
        for name, payload in files.items():
            (folder / name).write_bytes(payload)
    if model is not None:
        (tmp_path / "models").mkdir()
        shutil.copy(model, tmp_path / "models/srcnn.keras")
    return tmp_path


def stage(folder: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        stage_command(name),
        cwd=folder,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error in stage")]


@pytest.fixture(scope="module")
def model(repo) -> Path:
    return repo / "models/srcnn.keras"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_image_stops_patches_naming_the_file(tmp_path, case):
    payload, fragment = REFUSED[case]
    folder = scratch(tmp_path, {"a.png": GOOD, f"{case}.png": payload}, {"v.png": GOOD})
    result = stage(folder, "patches")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert f"data/raw/train/{case}.png" in line and fragment in line
    assert "Traceback" not in result.stderr
    assert list((folder / "data/patches").iterdir()) == []  # no partial patch file, no temporary


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_image_stops_evaluate_naming_the_file(tmp_path, model, case):
    payload, fragment = REFUSED[case]
    folder = scratch(tmp_path, {}, {"a.png": GOOD, f"{case}.png": payload}, model=model)
    result = stage(folder, "evaluate")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert f"data/raw/valid/{case}.png" in line and fragment in line
    assert "Traceback" not in result.stderr
    assert not (folder / "metrics").exists() or os.listdir(folder / "metrics") == []


def test_image_smaller_than_a_patch_stops_patches(tmp_path):
    small = encode(photo(20, 40))
    folder = scratch(tmp_path, {"a.png": GOOD, "small.png": small}, {"v.png": GOOD})
    result = stage(folder, "patches")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert "data/raw/train/small.png" in line and "smaller than a 33x33 patch" in line
    assert list((folder / "data/patches").iterdir()) == []


def test_image_too_small_for_ssim_stops_evaluate(tmp_path, model):
    folder = scratch(tmp_path, {}, {"a.png": GOOD, "small.png": encode(photo(8, 8))}, model=model)
    result = stage(folder, "evaluate")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert "data/raw/valid/small.png" in line
    assert "Traceback" not in result.stderr


def unusual_images() -> dict[str, tuple[bytes, bytes]]:
    """name: (unusual PNG, a plain PNG with what it must be read as)."""
    rgb, gray = photo(), photo()[:, :, 1]
    rgba = np.dstack([rgb, np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None, :].repeat(rgb.shape[0], 0)])
    p_png, p_rgb = palette_image()
    rng = np.random.default_rng(5)
    p_alpha = png_bytes(
        (photo()[:, :, 0] // 16).astype(np.uint8),
        3,
        palette=rng.integers(0, 256, (16, 3)),
        alpha=rng.integers(0, 256, 16),
    )
    p_alpha_rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(p_alpha, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    gray_alpha = np.dstack([gray, np.full_like(gray, 128)])
    return {
        "gray": (encode(gray), encode(gray)),  # used as Y as it is
        "gray_alpha": (png_bytes(gray_alpha, 4), encode(gray)),  # alpha dropped: gray
        "rgba": (encode(rgba), encode(rgb)),  # alpha dropped: RGB
        "palette": (p_png, encode(p_rgb)),  # palette applied: RGB
        "palette_alpha": (p_alpha, encode(p_alpha_rgb)),  # palette applied, transparency dropped
    }


def test_unusual_images_give_the_same_patches_as_their_plain_twins(tmp_path):
    cases = unusual_images()
    unusual = scratch(tmp_path / "unusual", {f"{n}.png": u for n, (u, _) in cases.items()}, {"v.png": GOOD})
    plain = scratch(tmp_path / "plain", {f"{n}.png": p for n, (_, p) in cases.items()}, {"v.png": GOOD})
    for folder in (unusual, plain):
        result = stage(folder, "patches")
        assert result.returncode == 0, result.stderr
    assert (unusual / "data/patches/train.npy").read_bytes() == (plain / "data/patches/train.npy").read_bytes()
    # Gray is Y itself: every HR label is a window of the gray photo.
    patches = np.load(unusual / "data/patches/train.npy")
    per_image = TINY["patches"]["per_image"]
    gray = photo()[:, :, 1]
    windows = np.lib.stride_tricks.sliding_window_view(gray, patches.shape[2:])
    for label in patches[:per_image, 1]:  # sorted names: gray.png comes first
        assert (windows == label).all(axis=(2, 3)).any()


def test_unusual_images_are_evaluated_like_their_plain_twins(tmp_path, model):
    cases = unusual_images()
    unusual = scratch(tmp_path / "unusual", {}, {f"{n}.png": u for n, (u, _) in cases.items()}, model=model)
    plain = scratch(tmp_path / "plain", {}, {f"{n}.png": p for n, (_, p) in cases.items()}, model=model)
    for folder in (unusual, plain):
        result = stage(folder, "evaluate")
        assert result.returncode == 0, result.stderr
    table = (unusual / "metrics/evaluate_per_image.csv").read_text()
    assert table == (plain / "metrics/evaluate_per_image.csv").read_text()
    assert all(f"valid,{n}," in table for n in cases)


def test_files_without_an_image_suffix_are_ignored(tmp_path):
    folder = scratch(
        tmp_path, {"a.png": GOOD, "README.txt": b"notes", "a.png.bak": b"junk", "noext": GOOD}, {"v.png": GOOD}
    )
    result = stage(folder, "patches")
    assert result.returncode == 0, result.stderr
    assert len(np.load(folder / "data/patches/train.npy")) == TINY["patches"]["per_image"]


PATCH_FILE_FAULTS = {
    "truncated": (lambda good: good[:-100], "data/patches/train.npy: 17452 bytes, expected 17552 for (8, 2, 33, 33)"),
    "not numpy": (lambda good: b"this is not a patch file", "data/patches/train.npy: not a NumPy .npy patch file"),
    "float32": (None, "data/patches/train.npy: expected uint8 or uint16 patches of shape (N, 2, S, S), found float32"),
    "too small for the model": (
        None,
        "data/patches/train.npy: 9-pixel patches leave no output for a model whose receptive field is 13 pixels",
    ),
}


@pytest.mark.parametrize("case", sorted(PATCH_FILE_FAULTS))
def test_bad_patch_file_stops_train_with_one_line(tmp_path, case):
    """Refusals of a patch file reach the user as `error in stage train: …`, not a ValueError traceback."""
    folder = scratch(tmp_path, {}, {})
    patches = folder / "data/patches"
    patches.mkdir(parents=True)
    good = np.zeros((8, 2, 33, 33), np.uint8)
    np.save(patches / "valid.npy", good)
    make, fragment = PATCH_FILE_FAULTS[case]
    if case == "float32":
        np.save(patches / "train.npy", good.astype(np.float32))
    elif case == "too small for the model":
        np.save(patches / "train.npy", good[:, :, :9, :9])
    else:
        np.save(patches / "train.npy", good)
        (patches / "train.npy").write_bytes(make((patches / "train.npy").read_bytes()))
    result = stage(folder, "train")
    assert result.returncode == 2, result.stderr
    [line] = error_lines(result)
    assert fragment in line
    assert "Traceback" not in result.stderr
    assert not (folder / "models").exists()


# A full disk or a read-only one under a stage's output, for real: a small tmpfs mounted over the output folder.
DISK_FAULTS = {
    "patches full": ("patches", "data/patches", "size=64k", "data/patches/train.npy", "no space left on device"),
    "patches read-only": ("patches", "data/patches", "ro", "data/patches/train.npy", "read-only file system"),
    "train full": ("train", "models", "size=8k", "models/srcnn.keras", "no space left on device"),
    # a file inside a temporary folder is named as the user will find it (it named metrics/.crops.<pid>….tmp/…)
    "evaluate full": ("evaluate", "metrics", "size=4k", "metrics/crops/valid_v.png", "no space left on device"),
    # TensorFlow's own writer: a ResourceExhaustedError traceback
    "export savedmodel full": (
        "export",
        "models",
        "size=60k",
        "models/export/srcnn_savedmodel",
        "no space left on device",
    ),
}


@needs_unshare
@pytest.mark.parametrize("case", sorted(DISK_FAULTS))
def test_a_full_or_read_only_disk_in_a_stage_is_one_line_naming_the_output(tmp_path, case, request):
    """Issue 42, case 4: the patches stage ended in a 19-line traceback (`OSError: [Errno 28] No space left on
    device`, no file named), the train stage the same inside Keras's save_model."""
    name, folder, mount, output, cause = DISK_FAULTS[case]
    root = scratch(tmp_path / "p", {f"t{i}.png": GOOD for i in range(4)}, {"v.png": GOOD})
    # 4 × 50 patches of 2 × 33²: over 64 KiB
    write_params(root, params_with({"patches": {"per_image": 50}, "export": {"formats": ["savedmodel"]}}))
    command = stage_command(name)
    if name == "train":
        assert stage(root, "patches").returncode == 0
    if name in ("evaluate", "export"):
        model = request.getfixturevalue("model")
        if name == "export":  # its inputs from the module's project; the model copied onto the small disk
            for path in ("data/patches/valid.npy", "metrics/evaluate.json"):
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(model.parents[1] / path, root / path)
            command = ["sh", "-c", 'cp "$0" models/ && exec "$@"', str(model), *command]
        else:
            (root / "models").mkdir()
            shutil.copy(model, root / "models")
    (root / folder).mkdir(parents=True, exist_ok=True)
    result = in_mount_namespace(mount, command, root, target=folder)
    assert "rc=2" in result.stdout, result.stdout + result.stderr
    assert error_lines(result) == [f"error in stage {name}: {output}: cannot write: {cause}; nothing was written"]
    assert "Traceback" not in result.stderr
    left = result.stdout.split("rc=2")[1].split()
    assert left == [".", ".."] + (["srcnn.keras"] if name == "export" else [])  # nothing partial, no temporary


def test_evaluate_refuses_a_model_with_nan_weights(tmp_path, model):
    """It used to score a diverged model as a finite PSNR."""
    import keras

    diverged = keras.saving.load_model(model, compile=False)
    kernel, bias = diverged.layers[-1].get_weights()
    diverged.layers[-1].set_weights([kernel, bias * np.nan])
    bad = tmp_path / "diverged.keras"
    diverged.save(bad)
    folder = scratch(tmp_path / "repo", {}, {"a.png": GOOD}, model=bad)
    result = stage(folder, "evaluate")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert "models/srcnn.keras: weights hold NaN or Infinity (conv3/bias)" in line
    assert "Traceback" not in result.stderr and not (folder / "metrics").exists()


def test_evaluate_refuses_an_image_whose_psnr_is_infinite(tmp_path, model):
    flat = encode(np.full((40, 48, 3), 77, np.uint8))  # bicubic reproduces a flat image exactly
    folder = scratch(tmp_path, {}, {"a.png": GOOD, "flat.png": flat}, model=model)
    result = stage(folder, "evaluate")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert "data/raw/valid/flat.png: bicubic reproduces this image exactly" in line
    assert not (folder / "metrics").exists() or os.listdir(folder / "metrics") == []


def huge_gray_png(side: int = 32769) -> bytes:
    """A valid side×side 8-bit gray PNG of about 1 MB (all zeros: it compresses ~1000×), built by streaming."""
    compressor, row = zlib.compressobj(9), b"\x00" * (side + 1)  # filter byte 0 + the row
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    return huge_gray_png()


def test_image_above_the_decoder_limit_is_named_with_its_size(tmp_path, huge_png):
    """A valid 32769×32769 PNG used to end in OpenCV's `(-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS`."""
    folder = scratch(tmp_path, {"a.png": GOOD, "big_gray.png": huge_png}, {"v.png": GOOD})
    result = stage(folder, "patches")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert line == (
        "error in stage patches: data/raw/train/big_gray.png: 32769x32769 = 1,073,807,361 pixels, above "
        "the decoder's limit of 1,073,741,824 (OpenCV's CV_IO_MAX_IMAGE_PIXELS); split it into tiles "
        "or downscale it first"
    )
    assert "Assertion failed" not in result.stderr and "Traceback" not in result.stderr


def test_srcnn_upscale_names_an_image_above_the_decoder_limit(tmp_path, model, huge_png):
    (tmp_path / "big_gray.png").write_bytes(huge_png)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "srcnn",
            "upscale",
            str(tmp_path / "big_gray.png"),
            "-o",
            str(tmp_path / "out.png"),
            "--model",
            str(model),
        ],
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        f"error: {tmp_path / 'big_gray.png'}: 32769x32769 = 1,073,807,361 pixels, above the decoder's "
        "limit of 1,073,741,824 (OpenCV's CV_IO_MAX_IMAGE_PIXELS); split it into tiles or downscale "
        "it first"
    ]
    assert "Assertion failed" not in result.stderr and not (tmp_path / "out.png").exists()
