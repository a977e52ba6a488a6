"""Helpers shared by the test modules: a temporary copy of the project as a git + DVC repo driven through the
real `dvc` CLI, small patch files, and DIV2K-shaped zips served by a real HTTP server on 127.0.0.1.

`pytest -m "not slow"` runs the unit tests only; tests that run the dvc CLI, train, or start servers and
clusters are marked `slow` (their module sets `pytestmark`).
"""

from __future__ import annotations

import collections
import hashlib
import http.server
import io
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from skimage import data as skdata

N_TRAIN, N_VALID = 4, 2  # images in the DIV2K-shaped test zips

PROJECT = Path(__file__).resolve().parents[1]
STAGES = ("download", "patches", "train", "evaluate", "export")

# Small enough for seconds per stage; the model stays the paper's 9-1-5.
TINY = {
    "patches": {"per_image": 8, "valid_per_image": 2},
    "train": {"epochs": 2, "batch_size": 32},
    # No format: the export stage runs after every training in these repos, and without formats it writes the
    # model card alone, without TensorFlow (~0.3 s, not ~8 s). tests/test_pipeline.py runs the default three
    # formats through DVC, tests/test_export.py every format end to end.
    "export": {"formats": []},
}


# --------------------------------------------------------------------------- the project as a DVC repo


def env() -> dict[str, str]:
    """Subprocess environment: this venv's `python` and `dvc` first on PATH, a fixed git identity."""
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e['PATH']}"
    e.update(
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@localhost",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@localhost",
    )
    return e


def stage_command(stage: str) -> list[str]:
    """The stage's `cmd` from this project's dvc.yaml (its paths included), run by this Python, the script
    addressed in this checkout: for running a stage outside DVC in a scratch folder, as DVC would."""
    cmd = shlex.split(yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"][stage]["cmd"])
    assert cmd[:2] == ["python", f"stages/{stage}.py"], cmd
    return [sys.executable, str(PROJECT / cmd[1]), *cmd[2:]]


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, str(Path(sys.executable).parent / "dvc"), *args, check=check)


def stages_run(result: subprocess.CompletedProcess) -> set[str]:
    out = result.stdout + result.stderr
    return {s for s in STAGES if f"Running stage '{s}'" in out}


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def set_key(tree: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree[part]
    tree[leaf] = value


def write_params(repo: Path, overrides: dict) -> None:
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for key, value in flatten(overrides).items():
        set_key(params, key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def checkout_files(project: Path = PROJECT) -> list[str]:
    """The files of a checkout that a test may copy: those git tracks, and untracked ones under `srcnn/` (a
    module or a shipped model not yet committed: what `pip install .` would pack). Never the user's own files
    beside them (a photo and the quick start's `photo_x2.png`, a `dvc plots show` folder): a test that copied
    those ran on the user's leftovers, not on the project (issue 40, case 1)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    tracked = set(
        subprocess.run(["git", "ls-files"], cwd=project, capture_output=True, text=True, check=True).stdout.splitlines()
    )
    return [name for name in listed if (name in tracked or name.startswith("srcnn/")) and (project / name).is_file()]


def project_repo(root: Path, overrides: dict) -> subprocess.CompletedProcess:
    """A git + DVC repo at `root` holding this project's pipeline with `overrides` applied to its params,
    reproduced once and committed; returns that first `dvc repro`."""
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(PROJECT / name, root / name)
    for folder in ("stages", "srcnn", "plots", "data/benchmarks", "data/images"):
        shutil.copytree(
            PROJECT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
        )
    write_params(root, overrides)
    run(root, "git", "init", "-q", "-b", "main")
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    dvc(root, "config", "plots.html_template", "../plots/template.html")  # as the project's .dvc/config says
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "pipeline")
    first = dvc(root, "repro")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "first run")
    return first


# --------------------------------------------------------------------------- a full or read-only disk, for real


def in_mount_namespace(mount: str, command: list[str], cwd: Path, target: str = "out") -> subprocess.CompletedProcess:
    """`command` run with a fresh tmpfs (`mount` options, e.g. "ro" or "size=64k") on cwd/`target` (a folder
    that exists), in a private mount namespace (unshare: no root needed, nothing mounted outside); then
    `echo rc=<its exit code>; ls -a target`."""
    script = f'mount -t tmpfs -o {mount} tmpfs {shlex.quote(target)} && "$@"; echo "rc=$?"; ls -a {shlex.quote(target)}'
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *command],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_unshare = pytest.mark.skipif(
    not shutil.which("unshare") or not unshare_works(), reason="unshare -rm (user + mount namespaces) not available"
)


# --------------------------------------------------------------------------- patch files


def save_patch_files(folder: Path, n_train: int, n_valid: int) -> tuple[Path, Path]:
    """Train and valid 17×17 patch files: input plane a blurred version of the label plane."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, (n_train + n_valid, 17, 17)).astype(np.float64)
    smooth = (base + np.roll(base, 1, 1) + np.roll(base, 1, 2)) / 3
    array = np.stack([smooth, base], axis=1).round().astype(np.uint8)
    train_path, valid_path = folder / "train.npy", folder / "valid.npy"
    np.save(train_path, array[:n_train])
    np.save(valid_path, array[n_train:])
    return train_path, valid_path


# --------------------------------------------------------------------------- DIV2K-shaped zips and their server


def _crops() -> list[np.ndarray]:
    """Distinct 48x40 RGB crops of real photographs (not synthetic noise)."""
    sources = [skdata.astronaut(), skdata.coffee()]
    crops = []
    for i in range(N_TRAIN + N_VALID):
        img = sources[i % 2]
        y, x = 37 * i + 20, 53 * i + 30
        crops.append(np.ascontiguousarray(img[y : y + 40, x : x + 48]))
    return crops


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, payload in entries.items():
            zf.writestr(name, payload)
    return buf.getvalue()


def _sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


class _State:
    """What the server serves, what it saw, and how it should misbehave next."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests = collections.Counter()
        self.bytes_served = collections.Counter()
        self.ranges: dict[str, list[str | None]] = collections.defaultdict(list)
        self.script: dict[str, list[str]] = collections.defaultdict(list)  # actions for the next requests
        self.release = threading.Event()  # unblocks a "stall" at teardown
        self.lock = threading.Lock()


class _Handler(http.server.BaseHTTPRequestHandler):
    state: _State  # set per server

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        st = self.state
        path = self.path
        with st.lock:
            st.requests[path] += 1
            st.ranges[path].append(self.headers.get("Range"))
            action = st.script[path].pop(0) if st.script[path] else "ok"
        if action.isdigit():
            return self._plain(int(action))
        if action.startswith("503 retry-after "):  # e.g. "503 retry-after 1": come back in 1 s
            return self._plain(503, {"Retry-After": action.split()[-1]})
        body = st.files.get(path)
        if body is None:
            return self._plain(404)

        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and action != "ignore_range":
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()

        if action in ("drop", "stall"):
            # Promise the whole payload, deliver half, then hang up (or hang).
            payload = payload[: len(payload) // 2]
        self._write(path, payload)
        if action == "stall":
            st.release.wait(10)
        if action in ("drop", "stall"):
            self.close_connection = True

    def _plain(self, status: int, headers: dict[str, str] | None = None):
        body = f"status {status}\n".encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _write(self, path: str, payload: bytes):
        step = 4096
        for i in range(0, len(payload), step):
            # Counted before the write: the client may have read the last bytes (and the test checked the
            # count) before this thread gets past a write of them.
            with self.state.lock:
                self.state.bytes_served[path] += len(payload[i : i + step])
            self.wfile.write(payload[i : i + step])
        self.wfile.flush()


class _Server:
    def __init__(self):
        self.state = _State()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/div2k"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def add(self, name: str, payload: bytes) -> str:
        """Serve `payload` at /div2k/<name>; return its URL."""
        self.state.files[f"/div2k/{name}"] = payload
        return f"{self.base}/{name}"

    def requests(self, name: str) -> int:
        return self.state.requests[f"/div2k/{name}"]

    def served(self, name: str) -> int:
        return self.state.bytes_served[f"/div2k/{name}"]

    def ranges(self, name: str) -> list:
        return self.state.ranges[f"/div2k/{name}"]

    def script(self, name: str, *actions: str):
        self.state.script[f"/div2k/{name}"].extend(actions)

    def close(self):
        self.state.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def _symlink_entry(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    info.create_system = 3  # unix
    return info


def free_ports(n: int) -> list[int]:
    """n ports on 127.0.0.1 free at the time of the call (for a tf.distribute cluster of n workers)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# --------------------------------------------------------------------------- the docs' commands, as written


def readme_blocks(text: str) -> list[list[str]]:
    """The lines of each ``` block of a README text: `\\`-continued lines joined, a `$ ` prompt and a trailing
    `# comment` removed, blank lines dropped; whole-line comments kept (they say who runs what)."""
    blocks = []
    for block in re.findall(r"^[ \t]*```[\w-]*\n(.*?)^[ \t]*```", text, flags=re.S | re.M):
        lines = (line.strip().removeprefix("$ ") for line in re.sub(r"\\\n\s*", "", block).splitlines())
        blocks.append([line if line.startswith("#") else re.sub(r"\s+#.*$", "", line) for line in lines if line])
    return blocks


def doc_pages() -> dict[str, str]:
    """The documentation a user reads, page by page: README.md, then docs/*.md (the reference pages it links
    to), each page's path relative to the project mapped to its text."""
    paths = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
    return {str(path.relative_to(PROJECT)): path.read_text() for path in paths}


def readme_section(heading: str) -> str:
    """The text from the line `heading` (a `## ` title) to the next `## ` title, in whichever page of
    `doc_pages()` holds it (exactly one must)."""
    holding = [text for text in doc_pages().values() if re.search(rf"^{re.escape(heading)}", text, flags=re.M)]
    assert len(holding) == 1, f"{heading!r} is in {len(holding)} pages of README.md and docs/*.md, not 1"
    text = holding[0]
    start = re.search(rf"^{re.escape(heading)}", text, flags=re.M).start()
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def run_line(cwd: Path, line: str, swaps: dict[str, str], **variables: str) -> subprocess.CompletedProcess:
    """A README command line run by bash as written, after `swaps` (what cannot exist here: a path outside the
    repo, a host name); `variables` are added to the environment. Fails the test on a non-zero exit."""
    for old, new in swaps.items():
        line = line.replace(old, new)
    result = subprocess.run(
        ["bash", "-c", line], cwd=cwd, env={**env(), **variables}, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
    return result
