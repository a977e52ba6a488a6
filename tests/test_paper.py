"""srcnn.shipping.paper: one DVC experiment per scale with the reproduction recipe, and the table from their metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import TINY, dvc, env, project_repo
from skimage import data as skdata

from srcnn import paper as paper_command
from srcnn.shipping import paper, paper_table

PROJECT = Path(__file__).resolve().parents[1]


def crops(seed: int, n: int, shape=(64, 72)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    source = skdata.astronaut()[..., ::-1]
    out = []
    for _ in range(n):
        top, left = rng.integers(0, 512 - shape[0]), rng.integers(0, 512 - shape[1])
        out.append(np.ascontiguousarray(source[top : top + shape[0], left : left + shape[1]]))
    return out


def test_commands_carry_the_whole_recipe_per_scale():
    commands = paper.commands("data/T91", ["Set5", "Set14"], stamp="T")
    assert [c[4] for c in commands] == ["paper-x2-T", "paper-x3-T", "paper-x4-T"]
    for scale, command in zip(paper.SCALES, commands, strict=True):
        sets = dict(command[i + 1].split("=", 1) for i, a in enumerate(command) if a == "-S")
        assert sets["scale"] == str(scale)
        assert sets["patches.hr_scales"] == "[1.0,0.9,0.8,0.7,0.6]" and sets["patches.flips_rotations"] == "true"
        assert sets["evaluate.benchmarks"] == "[Set5,Set14]" and sets["download.train_dir"] == "data/T91"
        assert set(paper.RECIPE) <= set(sets)


def record(set5_x2: float, with_x3: bool = True) -> dict:
    def entry(scale, psnr):
        return {
            "experiment": f"paper-x{scale}-20260101-000000",
            "rev": "abc",
            "timestamp": "t",
            "train_dir": "data/T91",
            "recipe_changes": {},
            "precision": "mixed_bfloat16",
            "train_seconds": 1800.0,
            "patches": 553224,
            "evaluate": {
                "valid": {"psnr_bicubic": 1, "psnr_srcnn": 2, "ssim_srcnn": 0.5},
                "Set5": {"psnr_bicubic": 33.6612, "psnr_srcnn": psnr, "ssim_srcnn": 0.9512},
            },
        }

    scales = {"2": entry(2, set5_x2)}
    if with_x3:
        scales["3"] = entry(3, 32.5)
    return {"recipe": paper.RECIPE, "scales": scales}


def test_table_puts_ours_beside_the_published_figures():
    table = paper_table.render_table(record(36.2049))
    lines = table.splitlines()
    set5_x2 = next(line for line in lines if line.startswith("| Set5 | ×2 |"))
    assert "33.66 / 33.66" in set5_x2 and "36.20 / 0.9512" in set5_x2 and "| 36.66 |" in set5_x2
    assert "| 36.34 |" in set5_x2 and "| -0.46 |" in set5_x2 and "| 30 min (bfloat16) |" in set5_x2
    assert "| Set5 | ×4 | — / 28.42 | not run | 30.49 |" in table  # not trained: the paper's figure still shown
    assert "| Urban100 | ×3 | — / 24.46 | not run | 26.24 |" in table
    assert "valid" not in table.split("\n\n", 1)[1]  # the validation split is Set5 itself: not a row of its own


def test_precision_is_a_recipe_change_only_where_auto_would_never_compute_in_it():
    """The recipe's train.mixed_precision is `auto` (bfloat16 on a CPU that has it natively, float32 elsewhere):
    a run in float32 or bfloat16 follows it whatever it set; float16 (`true` on a GPU) does not. Runs from
    before metrics/train.json recorded the precision trained on CPUs: `true` meant bfloat16 there."""

    def params(mixed, **train):
        return {"model": {"kernel_sizes": [9, 1, 5]}, "train": {"mixed_precision": mixed, **train}}

    assert paper.RECIPE["train.mixed_precision"] == "auto"
    for mixed, precision in ((False, None), (True, None), (False, "float32"), (True, "mixed_bfloat16")):
        assert "train.mixed_precision" not in paper.deviations(params(mixed), precision), (mixed, precision)
    for mixed in (True, False):  # float16: `true` on a GPU, whatever a record's value says
        assert paper.deviations(params(mixed), "mixed_float16")["train.mixed_precision"] is mixed
    assert paper.deviations(params(False, epochs=5))["train.epochs"] == 5  # other keys: compared as they are
    assert [paper.computed_in(params(m)) for m in (False, True, "auto")] == ["float32", "mixed_bfloat16", None]
    assert paper.computed_in(params(True), "mixed_float16") == "mixed_float16"
    # A record that says neither (an `auto` run without a recorded precision) says nothing about it in the table.
    shipped = {"name": "m", "preset": "9-1-5", "scale": 2, "params": params("auto"), "metrics": {}}
    shipped |= {"machine": {"cpu": "c", "cores": 2}, "code": {"experiment": "e", "commit": "0" * 40}}
    shipped["training"] = {"epochs": 1, "patches": 10, "seconds": 60.0}
    assert "- `m`: 1 epochs of 10 patches, 1 min on c (2 cores)" in paper_table.render_shipped_table([shipped])
    shipped["training"]["precision"] = "mixed_bfloat16"
    assert "- `m`: 1 epochs of 10 patches in bfloat16, 1 min" in paper_table.render_shipped_table([shipped])
    # A run resumed from a checkpoint: its seconds are those of the epochs after it, and the table says so.
    shipped["training"] |= {"epochs": 20, "resumed_from_epoch": 8}
    assert "20 epochs of 10 patches in bfloat16, 1 min (epochs 9–20: resumed) on c" in paper_table.render_shipped_table(
        [shipped]
    )


def test_readme_commands_are_generated_from_the_recipe(tmp_path, monkeypatch):
    """The committed commands in docs/paper.md (and README.md's table: tests/test_pretrained.py) are generated; a
    changed recipe makes the check fail until `table --write` (`make paper-table`) rewrites the blocks, each in
    its own page."""
    monkeypatch.chdir(PROJECT)
    assert paper_command.main(["table", "--check"]) == 0
    (tmp_path / "docs").mkdir()
    for page in (paper_table.README, paper_table.COMMANDS_PAGE):
        (tmp_path / page).write_text((PROJECT / page).read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(paper.RECIPE, "train.epochs", 999)
    assert paper_command.main(["table", "--check"]) == 1
    assert paper_command.main(["table", "--write"]) == 0
    assert paper_command.main(["table", "--check"]) == 0 and "train.epochs=999" in paper_table.COMMANDS_PAGE.read_text()
    assert (
        paper_table.COMMANDS[0] not in paper_table.README.read_text()
        and paper_table.TABLE[0] not in paper_table.COMMANDS_PAGE.read_text()
    )


@pytest.mark.slow
def test_run_makes_one_experiment_per_scale_and_collects_them(tmp_path_factory):
    """`python -m srcnn.paper run` through the real dvc CLI (tiny overrides), then the table from its record."""
    from srcnn.training.precision import precision_policy

    repo = tmp_path_factory.mktemp("paper_repo")
    for i, image in enumerate(crops(0, 5)):
        path = repo / "data/benchmarks/Set5" / f"s{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), image)
    # A folder name with what Hydra's override grammar would misread unquoted (spaces, parentheses, a comma,
    # an accent): `make paper T91="…"` must pass it through `dvc exp run -S` intact.
    train_dir = "my train (copy), é"
    for i, image in enumerate(crops(1, 3)):
        path = repo / train_dir / f"t{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), image)
    project_repo(repo, TINY)
    tiny = ["train.epochs=1", "train.batch_size=32", "patches.stride=24", "patches.hr_scales=[1.0,0.8]"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "srcnn.paper",
            "run",
            "--train-dir",
            train_dir,
            "--scales",
            "3",  # one scale here; the README block below runs ×2, ×3 and ×4
            *[a for kv in tiny for a in ("-S", kv)],
        ],
        cwd=repo,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    shown = dvc(repo, "exp", "show", "--json").stdout
    recorded = json.loads((repo / paper.RESULTS).read_text())
    assert sorted(recorded["scales"]) == ["3"]
    for scale, entry in recorded["scales"].items():
        assert entry["experiment"] in shown and entry["experiment"].startswith(f"paper-x{scale}-")
        assert set(entry["evaluate"]) == {"valid", "Set5"} and entry["evaluate"]["Set5"]["images"] == 5
        # The -S overrides are recorded as changes to the recipe.
        assert entry["recipe_changes"] == {
            "patches.hr_scales": [1.0, 0.8],
            "patches.stride": 24,
            "train.batch_size": 32,
            "train.epochs": 1,
        }
        # `auto` resolved on this machine, as training resolves it, and recorded.
        assert entry["precision"] == precision_policy("auto")
    for entry in recorded["scales"].values():  # one point per epoch: [epoch, minutes, validation PSNR]
        assert [point[0] for point in entry["curve"]] == [1] and 0 < entry["curve"][0][2] < 60
    table = paper_table.render_table(recorded)
    assert "| Set5 | ×3 |" in table and "Run with changes to the recipe" in table
    assert "- ×3, validation PSNR on Set5 patches by training time: " in table


def test_run_without_set5_says_what_to_do(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "srcnn.paper", "run"], cwd=tmp_path, env=env(), capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: data/benchmarks/Set5: missing; the recipe validates and reports on Set5 (copy its 5 PNGs there; "
        "add Set14, BSD100, … beside it for more rows)"
    ]


def test_string_values_reach_dvc_exp_run_intact_whatever_their_characters():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()  # the parser `dvc exp run -S` uses
    for text in ("/data/T91 (copy), é", "it's", "a\\b", "end\\", "q\\'x", "[x]=y{z}", "plain/path-1.0"):
        (override,) = [a for a in paper.overrides(2, text, ["Set5"]) if a.startswith("download.train_dir=")]
        assert parser.parse_override(override).value() == text, override


def test_an_extra_override_replaces_the_recipe_value_instead_of_repeating_the_key():
    args = paper.overrides(3, "data/T91", ["Set5"], ["train.epochs=5", "seed=1"])
    keys = [a.split("=", 1)[0] for a in args]
    assert len(keys) == len(set(keys))
    assert "train.epochs=5" in args and "seed=1" in args and "scale=3" in args


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path_factory):
    """docs/paper.md's block of commands, byte for byte, in a repo with a tiny data/T91 and Set5."""
    readme = (PROJECT / "README.md").read_text()
    page = (PROJECT / paper_table.COMMANDS_PAGE).read_text()
    block = page[
        page.index(paper_table.COMMANDS[0]) + len(paper_table.COMMANDS[0]) : page.index(paper_table.COMMANDS[1])
    ]
    script = block.strip().removeprefix("```sh").removesuffix("```")
    repo = tmp_path_factory.mktemp("readme_paper")
    for folder, seed, n in (("data/benchmarks/Set5", 0, 5), ("data/T91", 1, 3)):
        for i, image in enumerate(crops(seed, n, shape=(64, 72))):  # 0.6 × 64 still holds a 33×33 patch at ×4
            path = repo / folder / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), image)
    project_repo(repo, TINY)
    (repo / "README.md").write_text(readme)
    (repo / "docs").mkdir(exist_ok=True)
    (repo / paper_table.COMMANDS_PAGE).write_text(page)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=repo, env=env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    recorded = json.loads((repo / paper.RESULTS).read_text())
    assert sorted(recorded["scales"]) == ["2", "3", "4"]
    assert all(entry["recipe_changes"] == {} for entry in recorded["scales"].values())
    # Each scale's own model and data: the bicubic baseline on Set5 falls with the factor.
    bicubic = [recorded["scales"][s]["evaluate"]["Set5"]["psnr_bicubic"] for s in ("2", "3", "4")]
    assert bicubic[0] > bicubic[1] > bicubic[2], bicubic
    assert "| Set5 | ×4 |" in result.stdout and (repo / "README.md").read_text() == readme  # printed, not written
    assert (repo / paper_table.COMMANDS_PAGE).read_text() == page
