"""Every `dvc …` command line in the code blocks of README.md and docs/*.md runs in a test exactly as written.

The lines are read from the pages themselves (conftest.doc_pages), so a command edited there is the command run
here, whichever page it is on. Each runs with
`bash -c` in a tiny copy of the project; only what cannot exist on a test machine is swapped, and the swaps
are listed in SWAPS (a path outside the repo, a revision placeholder, host names). A command on any page that
no test runs fails `test_every_readme_dvc_command_is_run`.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess

import cv2
import pytest
import yaml
from conftest import (
    N_TRAIN,
    N_VALID,
    PROJECT,
    STAGES,
    TINY,
    _crops,
    _png,
    _Server,
    _sha,
    _zip,
    doc_pages,
    dvc,
    env,
    free_ports,
    project_repo,
    readme_blocks,
    readme_section,
    run,
    run_line,
    stages_run,
)

from srcnn.data import div2k

SPLITS = ("train", "valid")

pytestmark = pytest.mark.slow  # the dvc CLI and training: `pytest -m "not slow"` skips it


def readme_dvc_commands(text: str) -> list[str]:
    """A page's command lines (inside ``` blocks) whose program, after any VAR=value prefixes, is `dvc`.

    Continuation lines (`\\` at the end) are joined, a `$ ` prompt and a trailing `# comment` are removed.
    """
    commands = []
    for line in (line for block in readme_blocks(text) for line in block):
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            words.pop(0)
        if words[:1] == ["dvc"]:
            commands.append(line)
    return commands


# Each page (README.md, docs/*.md) with its `dvc` command lines.
PAGE_COMMANDS = {page: readme_dvc_commands(text) for page, text in doc_pages().items()}
README_COMMANDS = [command for commands in PAGE_COMMANDS.values() for command in commands]

# Run by other tests, byte for byte from their page (each test names the block it reads).
ELSEWHERE = {
    # docs/paper.md: `make paper`'s loop, one `dvc exp run` per scale:
    # tests/test_paper.py::test_readme_commands_run_as_written
    "paper": re.compile(r'^dvc exp run -n "paper-x\$s-'),
    # docs/models.md: a shipped model fetched by its version tag:
    # tests/test_pretrained.py::test_every_shipped_model_is_a_dvc_artifact_fetched_by_its_version_tag
    "models": re.compile(r'^dvc artifacts get "\$REPO" srcnn-915-x2 '),
    # docs/training-data.md: a 16-bit run, from the 8-bit refusal back to 16 bits:
    # tests/test_sixteen_bit.py::test_a_mixed_folder_at_8_bits_is_refused_listing_the_16_bit_files
    "16-bit": re.compile(r"^dvc exp run -S download.source=folder -S download.bit_depth=16$"),
    # docs/training.md: switching to a network on the LR image: tests/test_archs.py::lr_repo
    "archs": re.compile(r"^dvc exp run -S model\.arch=\w+ -S patches\.size=\d+$"),
}
# docs/experiments.md's "Working as a team" section's blocks, run with a bare git origin and three clones:
# tests/test_team.py.
TEAM_COMMANDS = set(readme_dvc_commands(readme_section("## Working as a team")))

# This module's run, in order; each command as its page writes it (most in docs/experiments.md and
# docs/training-data.md; README.md repeats a few).
WORKSPACE = [
    "dvc dag",
    "dvc repro",
    "dvc exp run -S train.learning_rate=1e-4",
    "dvc exp run -S resize=opencv",
    "dvc exp show",
    "dvc params diff",
    "dvc metrics show",
    "dvc metrics diff",
    "dvc plots show",
    "dvc plots diff <rev>",
    "dvc exp run -S 'evaluate.benchmarks=[Set5]'",
    "dvc exp run -S download.source=folder",
    # From the folder source to DIV2K: download runs, with its cache in SRCNN_CACHE_DIR; the next line then
    # finds the pipeline up to date, and a new URL reruns download alone (the same images).
    "SRCNN_CACHE_DIR=/scratch/srcnn dvc exp run -S download.source=div2k",
    "dvc exp run -S download.source=div2k",
    "dvc exp run -S download.source=div2k -S download.div2k_url=file:///data/DIV2K/",
    "dvc exp run -S download.source=div2k -S download.train_limit=100 -S download.valid_limit=10",
]
MULTIWORKER = [
    "dvc pull patches",
    """TF_CONFIG='{"cluster": {"worker": ["hostA:12345", "hostB:12345"]}, "task": {"type": "worker", "index": 0}}' """
    "dvc repro",
]


def test_every_readme_dvc_command_is_run():
    """Adding a `dvc` command to README.md or any docs/*.md page without running it in a test fails."""
    assert {"README.md", "docs/pipeline.md", "docs/experiments.md", "docs/models.md"} <= set(PAGE_COMMANDS)
    for name, pattern in ELSEWHERE.items():
        assert any(pattern.search(c) for c in README_COMMANDS), f"the {name} block moved: update ELSEWHERE"
    assert TEAM_COMMANDS, "the team section moved"
    elsewhere = {c for c in README_COMMANDS if any(p.search(c) for p in ELSEWHERE.values())}
    run_here = set(WORKSPACE + MULTIWORKER)
    unrun = {
        page: sorted(set(commands) - elsewhere - TEAM_COMMANDS - run_here)
        for page, commands in PAGE_COMMANDS.items()
        if set(commands) - elsewhere - TEAM_COMMANDS - run_here
    }
    assert unrun == {}  # none run by no test, per page
    assert sorted(run_here - set(README_COMMANDS)) == []  # none run here that no page shows any more


def test_extraction_joins_continuations_and_drops_prompts_and_comments():
    text = "x\n```sh\n$ dvc repro   # note\nFOO=1 \\\n    dvc exp show\necho dvc\n```\n`dvc inline`\n"
    assert readme_dvc_commands(text) == ["dvc repro", "FOO=1 dvc exp show"]


def test_readme_workspace_commands_run_as_written(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    project_repo(repo, TINY)
    # What the README's commands expect to find: a benchmark set, images for the folder source, DIV2K zips
    # on a server (the params' URL swapped for it, as the official one is not reachable) and in a folder.
    images = sorted((repo / "data/raw/valid").iterdir())
    train_images = sorted((repo / "data/raw/train").iterdir())[:3]
    for folder, picked in (
        (repo / "data/benchmarks/Set5", images),
        (repo / "data/images/valid", images[:2]),
        (repo / "data/images/train", train_images),
    ):
        folder.mkdir(parents=True, exist_ok=True)
        for image in picked:
            shutil.copy(image, folder / image.name)
    # One held-out image as a JPEG: the folder source reads any format and writes PNGs under data/raw.
    held_out = images[2]
    assert cv2.imwrite(str(repo / "data/images/valid/held_out.jpg"), cv2.imread(str(held_out)))
    pngs = [_png(c) for c in _crops()]
    zips = {
        "train": _zip({f"DIV2K_train_HR/{i + 1:04d}.png": pngs[i] for i in range(N_TRAIN)}),
        "valid": _zip({f"DIV2K_valid_HR/{801 + i:04d}.png": pngs[N_TRAIN + i] for i in range(N_VALID)}),
    }
    local = tmp_path / "DIV2K"
    local.mkdir()
    server = _Server()
    for split, payload in zips.items():
        server.add(div2k.ARCHIVES[split], payload)
        (local / div2k.ARCHIVES[split]).write_bytes(payload)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["download"].update(div2k_url=server.base + "/", div2k_sha256={k: _sha(v) for k, v in zips.items()})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "test data and the DIV2K server")
    swaps = {"<rev>": "HEAD", "file:///data/DIV2K/": local.as_uri() + "/", "/scratch/srcnn": str(tmp_path / "scratch")}
    try:
        # XDG_CACHE_HOME: the download cache of the lines without SRCNN_CACHE_DIR, kept out of the user's home
        out = {}
        for line in WORKSPACE:
            out[line] = run_line(repo, line, swaps, XDG_CACHE_HOME=str(tmp_path / "xdg"))
            if line == "dvc exp run -S download.source=folder":
                out["folder raw"] = tuple(
                    sorted(p.name for p in (repo / f"data/raw/{s}").glob("*.png")) for s in SPLITS
                )
    finally:
        server.close()

    assert all(f"| {stage} |" in out["dvc dag"].stdout for stage in STAGES)
    # The copies made above: data/images/* are download's deps whatever the source (the sample source ignores
    # them, so data/raw is unchanged and patches and train do not run) and data/benchmarks is evaluate's.
    assert stages_run(out["dvc repro"]) == {"download", "evaluate"}
    assert {"train", "evaluate"} <= stages_run(out["dvc exp run -S train.learning_rate=1e-4"])
    assert "patches" in stages_run(out["dvc exp run -S resize=opencv"])
    assert "resize" in out["dvc params diff"].stdout and "0.0001" in out["dvc params diff"].stdout
    assert "valid.psnr_srcnn" in out["dvc metrics show"].stdout
    assert "valid.psnr_srcnn" in out["dvc metrics diff"].stdout
    assert (repo / "dvc_plots/index.html").stat().st_size > 0
    assert "Set5" in json.loads((repo / "metrics/evaluate.json").read_text())
    assert stages_run(out["dvc exp run -S download.source=folder"]) == set(STAGES)
    # The folder source ran on the images put in data/images/ (checked here before DIV2K replaced them).
    assert out["folder raw"] == (
        sorted(p.name for p in train_images),
        sorted([images[0].name, images[1].name, "held_out.png"]),
    )
    assert sorted(p.name for p in (repo / "data/raw/train").iterdir()) == [f"{i + 1:04d}.png" for i in range(N_TRAIN)]
    assert server.requests(div2k.ARCHIVES["train"]) == 1  # fetched once, into SRCNN_CACHE_DIR
    assert {p.name for p in (tmp_path / "scratch").rglob("*.zip")} == set(div2k.ARCHIVES.values())
    assert {p.name for p in (tmp_path / "xdg").rglob("*.zip")} == set(div2k.ARCHIVES.values())  # from file://
    div2k_runs = [stages_run(out[line]) for line in WORKSPACE[-4:]]
    assert div2k_runs == [set(STAGES), set(), {"download"}, {"download"}]
    # The experiments are listed under their baseline (the params columns come last, cut at rich's width
    # when the output is not a terminal).
    shown = out["dvc exp show"].stdout
    assert "workspace" in shown and len(re.findall(r"[├└]── ", shown)) >= 2, shown[:3000]


def readme_block_after(heading_line: str) -> list[str]:
    """The command lines (continuations joined, comments dropped) of the first ``` block after a line of text, in
    the one page (README.md or docs/*.md) that holds it."""
    (text,) = (text for text in doc_pages().values() if heading_line in text)
    return [line for line in readme_blocks(text[text.index(heading_line) :])[0] if not line.startswith("#")]


def test_readme_multiworker_commands_run_as_written(tmp_path):
    """docs/training.md's two-machine block: the chief's `dvc repro` in one clone; in another, `dvc pull patches`
    from the remote the first pushed to, then worker 1's `python stages/train.py`; both on 127.0.0.1 (host names
    swapped for ports)."""
    chief_line, pull_line, worker_line = readme_block_after(
        "`multiworker`: `MultiWorkerMirroredStrategy` across machines"
    )
    train_cmd = " ".join(yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]["train"]["cmd"].split())
    assert chief_line == MULTIWORKER[1] and pull_line == MULTIWORKER[0]
    assert worker_line.endswith(train_cmd)  # the README's = dvc.yaml's
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    project_repo(a, TINY)
    params = yaml.safe_load((a / "params.yaml").read_text())
    params["train"]["strategy"] = "multiworker"  # "both machines: the same commit, with train.strategy: multiworker"
    (a / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(a, "remote", "add", "-d", "storage", str(tmp_path / "remote"))  # the team's remote ("Working as a team")
    run(a, "git", "commit", "-qam", "multiworker, and the team's DVC remote")
    dvc(a, "push")
    run(tmp_path, "git", "clone", "-q", str(a), str(b))
    run(b, "bash", "-c", pull_line)
    assert (b / "data/patches/train.npy").read_bytes() == (a / "data/patches/train.npy").read_bytes()
    assert not (b / "models/srcnn.keras").exists()  # only what was asked for
    ports = free_ports(2)
    swaps = {"hostA:12345": f"127.0.0.1:{ports[0]}", "hostB:12345": f"127.0.0.1:{ports[1]}"}
    procs = []
    for repo, line in ((b, worker_line), (a, chief_line)):
        for old, new in swaps.items():
            line = line.replace(old, new)
        procs.append(
            subprocess.Popen(
                ["bash", "-c", line],
                cwd=repo,
                env={**env(), "CUDA_VISIBLE_DEVICES": ""},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=600)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        assert proc.returncode == 0, outputs[-1]
    assert {"train", "evaluate"} <= stages_run(subprocess.CompletedProcess([], 0, outputs[1], ""))
    assert f"Epoch {TINY['train']['epochs']}/{TINY['train']['epochs']}" in outputs[0]  # worker 1 trained too
    assert (a / "models/srcnn.keras").exists() and not (b / "models/srcnn.keras").exists()  # only the chief writes


def test_gpu_setup_installs_the_cuda_build_of_the_pinned_version():
    """`make setup TF=gpu` (docs/training.md, "Training on many devices"; not run here: it downloads CUDA) as make
    would run it: requirements-gpu.txt, i.e. tensorflow[and-cuda] at requirements.txt's tensorflow-cpu version
    and every CUDA library at one version, the CPU build removed first."""
    for page in ("README.md", "docs/training.md"):
        assert "make clean-venv && make setup TF=gpu" in doc_pages()[page], page
    pinned = next(
        line.split("==")[1] for line in (PROJECT / "requirements.txt").read_text().splitlines() if "tensorflow" in line
    )
    gpu = [line for line in (PROJECT / "requirements-gpu.txt").read_text().splitlines() if not line.startswith("#")]
    assert gpu[0] == f"tensorflow[and-cuda]=={pinned}"
    assert all(re.fullmatch(r"nvidia-[a-z0-9-]+==[0-9.]+", line) for line in gpu[1:]) and len(gpu) > 5, gpu
    dry = subprocess.run(["make", "-n", "-B", "setup", "TF=gpu"], cwd=PROJECT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "install --quiet -r requirements-gpu.txt" in dry.stdout
    assert "uninstall --quiet -y tensorflow-cpu" in dry.stdout
    plain = subprocess.run(["make", "-n", "-B", "setup"], cwd=PROJECT, capture_output=True, text=True).stdout
    assert 'if [ "cpu" = gpu ]' in plain  # the default stays the CPU build
