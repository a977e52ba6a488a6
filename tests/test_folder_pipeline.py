"""`download.source: folder` through the real `dvc` CLI: the folders are dependencies of download.

Adding, removing or changing an image in either folder (relative to the repo or absolute, outside
it) reruns download and the stages after it; nothing else reruns download.
"""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from conftest import STAGES, TINY, dvc, project_repo, run, stages_run
from skimage import data as skdata

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it


def photo(seed: int, shape=(72, 88)) -> np.ndarray:
    """A crop of a real photo, a different one per seed."""
    rng = np.random.default_rng(seed)
    source = skdata.astronaut()
    top, left = rng.integers(0, source.shape[0] - shape[0]), rng.integers(0, source.shape[1] - shape[1])
    return np.ascontiguousarray(source[top : top + shape[0], left : left + shape[1], ::-1])


@pytest.fixture(scope="module")
def folder_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder_repo")
    outside = tmp_path_factory.mktemp("outside_valid")  # an absolute path outside the repo
    (root / "mydata/train/sub").mkdir(parents=True)
    for i, name in enumerate(("a.png", "b.jpg", "sub/c.bmp")):
        assert cv2.imwrite(str(root / "mydata/train" / name), photo(i))
    for i in range(2):
        assert cv2.imwrite(str(outside / f"v{i}.png"), photo(10 + i))
    overrides = {**TINY, "download": {"source": "folder", "train_dir": "mydata/train", "valid_dir": str(outside)}}
    first = project_repo(root, overrides)
    return root, outside, first


def status(repo) -> set[str]:
    return set(json.loads(dvc(repo, "status", "--json").stdout))


def test_folder_source_runs_the_pipeline_on_the_folders(folder_repo):
    repo, outside, first = folder_repo
    assert stages_run(first) == set(STAGES)
    assert sorted(p.name for p in (repo / "data/raw/train").glob("*.png")) == ["a.png", "b.png", "sub__c.png"]
    assert sorted(p.name for p in (repo / "data/raw/valid").glob("*.png")) == ["v0.png", "v1.png"]
    # Where each copy came from, for the later stages' messages (srcnn.data.io.user_path).
    assert json.loads((repo / "data/raw/train/.sources.json").read_text()) == {
        "a.png": "mydata/train/a.png",
        "b.png": "mydata/train/b.jpg",
        "sub__c.png": "mydata/train/sub/c.bmp",
    }
    assert json.loads((repo / "metrics/evaluate.json").read_text())["valid"]["images"] == 2
    assert status(repo) == set()


@pytest.mark.parametrize(
    ("where", "change"),  # each change and each kind of folder once (all six pairs took 160 s of CI)
    [
        ("train (relative)", "add"),
        ("valid (absolute, outside the repo)", "modify"),
        ("train (relative)", "remove"),
        ("valid (absolute, outside the repo)", "remove"),
    ],
)
def test_image_changes_rerun_download_and_what_follows(folder_repo, where, change):
    repo, outside, _ = folder_repo
    folder = repo / "mydata/train/sub" if where.startswith("train") else outside
    target = folder / ("new.png" if change == "add" else "c.bmp" if where.startswith("train") else "v1.png")
    saved = target.read_bytes() if target.exists() else None
    try:
        if change == "remove":
            target.unlink()
        else:
            assert cv2.imwrite(str(target), photo(99))
        assert status(repo) == {"download"}
        ran = stages_run(dvc(repo, "repro"))
        # download always; patches, train and evaluate because data/raw changed (evaluate reads the valid split,
        # train the patches): the whole chain, since every image feeds patches.
        assert ran == set(STAGES)
    finally:
        if saved is None:
            target.unlink()
        else:
            target.write_bytes(saved)
        # Back to the committed run without recomputing it: its lock and metrics from git, outputs from DVC's cache.
        run(repo, "git", "reset", "-q", "--hard")
        dvc(repo, "checkout", "-q", "--force")
        assert status(repo) == set()


def test_other_files_rerun_nothing(folder_repo):
    repo, outside, _ = folder_repo
    (repo / "notes.md").write_text("unrelated")
    (repo / "data/images/train/x.png").parent.mkdir(parents=True, exist_ok=True)  # the unused default folder
    assert cv2.imwrite(str(repo / "data/images/train/x.png"), photo(5))
    try:
        assert status(repo) == set()
        assert stages_run(dvc(repo, "repro")) == set()
    finally:
        (repo / "notes.md").unlink()
        (repo / "data/images/train/x.png").unlink()


def test_a_bad_image_in_the_folder_is_one_line_and_keeps_data_raw(folder_repo):
    repo, outside, _ = folder_repo
    bad = repo / "mydata/train/sub/broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    before = sorted(p.name for p in (repo / "data/raw/train").iterdir())
    try:
        result = dvc(repo, "repro", check=False)
        assert result.returncode != 0
        err = result.stderr
        assert "error in stage download: " in err and "mydata/train/sub/broken.png" in err
        assert "Traceback" not in err
        # DVC removes a stage's outputs before running it: data/raw is the previous version or absent, never
        # partial, and `dvc checkout` brings the previous version back from the cache.
        raw = repo / "data/raw/train"
        assert not raw.exists() or sorted(p.name for p in raw.iterdir()) == before
    finally:
        bad.unlink()
    dvc(repo, "checkout", "-q")
    assert sorted(p.name for p in (repo / "data/raw/train").iterdir()) == before
    assert status(repo) == set()


def refused(repo, *expected: str, args: tuple[str, ...] = ()) -> str:
    """`dvc repro ARGS` fails in download with one line holding every `expected` text."""
    result = dvc(repo, "repro", *args, check=False)
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error in stage download: ")]
    assert len(lines) == 1 and all(e in lines[0] for e in expected), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_validation_image_that_is_also_a_training_image_is_refused(folder_repo):
    """Separate folders, one picture in both (byte-identical, and the same pixels as another format)."""
    repo, outside, _ = folder_repo
    copies = [outside / "copy_of_a.png", outside / "b_again.bmp"]
    shutil.copy(repo / "mydata/train/a.png", copies[0])
    assert cv2.imwrite(str(copies[1]), cv2.imread(str(repo / "mydata/train/sub/c.bmp")))
    try:
        line = refused(repo, "download.valid_dir holds 2 image(s) with the same pixels as training images")
        assert f"{copies[0]} = " in line and "mydata/train/a.png" in line and "mydata/train/sub/c.bmp" in line
    finally:
        for copy in copies:
            copy.unlink()
    dvc(repo, "checkout", "-q")
    assert status(repo) == set()


def test_a_linked_subfolder_is_refused_not_silently_dropped(folder_repo, tmp_path):
    """os.walk does not follow links, nor does DVC hash what they hold: the images there were dropped."""
    repo, _, _ = folder_repo
    elsewhere = tmp_path / "more"
    elsewhere.mkdir()
    for i in range(2):
        assert cv2.imwrite(str(elsewhere / f"m{i}.png"), photo(40 + i))
    link = repo / "mydata/train/more"
    link.symlink_to(elsewhere, target_is_directory=True)
    try:
        # DVC does not even see the new link (its hash of the folder skips links), so the run is forced, as a
        # fresh clone's first run would be.
        expected = "mydata/train/more: a symbolic link to a folder; DVC does not look inside linked folders"
        refused(repo, expected, args=("-f", "-s", "download"))
    finally:
        link.unlink()
    dvc(repo, "checkout", "-q")
    assert status(repo) == set()


def test_later_stages_name_the_users_file_not_the_copy_in_data_raw(folder_repo):
    """The patches stage reads data/raw/train/sub__tiny.png; its error names mydata/train/sub/tiny.png."""
    repo, _, _ = folder_repo
    tiny = repo / "mydata/train/sub/tiny.png"
    assert cv2.imwrite(str(tiny), photo(50, shape=(20, 24)))
    try:
        result = dvc(repo, "repro", check=False)
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.startswith("error in stage patches: ")]
        assert lines == [
            "error in stage patches: mydata/train/sub/tiny.png (copied to data/raw/train/sub__tiny.png): "
            "24x20 after modcrop is smaller than a 33x33 patch"
        ], result.stderr
    finally:
        tiny.unlink()
    dvc(repo, "repro")
    assert status(repo) == set()


def test_missing_folder_named(folder_repo, tmp_path):
    repo, outside, _ = folder_repo
    moved = tmp_path / "moved"
    shutil.move(str(outside), moved)
    try:
        result = dvc(repo, "repro", check=False)
        assert result.returncode != 0
        # DVC's own message, before the stage starts: "failed to reproduce 'download': … No such file or
        # directory: '<folder>'".
        assert "failed to reproduce 'download'" in result.stderr and str(outside) in result.stderr
    finally:
        shutil.move(str(moved), outside)
    dvc(repo, "checkout", "-q")  # DVC removed data/raw before finding the dependency missing
    assert status(repo) == set()
