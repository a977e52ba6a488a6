"""Tests for srcnn.params: the params.yaml schema, per-stage views, dvc.yaml agreement, the CLI."""

from __future__ import annotations

import copy
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from srcnn.params import (
    SCHEMA,
    ParamsError,
    TrainStage,
    current_tree,
    for_stage,
    load,
    recorded_model,
    stage_keys,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]

# A complete, valid tree written out here (not read from params.yaml, which others may be editing).
VALID = {
    "seed": 42,
    "scale": 2,
    "resize": "matlab",
    "download": {
        "source": "sample",
        "bit_depth": 8,
        "div2k_url": "https://data.vision.ee.ethz.ch/cvl/DIV2K/",
        "div2k_sha256": {"train": "a" * 64, "valid": "0123456789abcdef" * 4},
        "train_limit": None,
        "valid_limit": 10,
        "train_dir": "data/images/train",
        "valid_dir": "/abs/valid",
    },
    "patches": {
        "size": 33,
        "per_image": 500,
        "valid_per_image": 32,
        "stride": None,
        "flips_rotations": False,
        "hr_scales": [1.0],
    },
    "model": {
        "arch": "srcnn",
        "srcnn": {"filters": [64, 32], "kernel_sizes": [9, 1, 5]},
        "fsrcnn": {"d": 56, "s": 12, "m": 4},
        "espcn": {"filters": [64, 32], "kernel_sizes": [5, 3, 3], "activation": "tanh"},
    },
    "train": {
        "epochs": 3,
        "batch_size": 128,
        "learning_rate": 0.001,
        "lr_schedule": "cosine",
        "strategy": "auto",
        "mixed_precision": False,
        "float32_final_epochs": 0,
    },
    "evaluate": {"crop_border": None, "benchmarks": []},
    "export": {"formats": ["onnx", "tflite", "savedmodel"]},
}


def tree_with(dotted: str, value) -> dict:
    tree = copy.deepcopy(VALID)
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node[part]
    node[leaf] = value
    return tree


def tree_without(dotted: str) -> dict:
    tree = copy.deepcopy(VALID)
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node[part]
    del node[leaf]
    return tree


def write_yaml(path: Path, tree: dict) -> Path:
    """params.yaml with `tree`, beside a copy of the project's dvc.yaml (which says what each stage reads)."""
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    shutil.copy(ROOT / "dvc.yaml", path.parent / "dvc.yaml")
    return path


STAGE_KEYS = stage_keys(Path(__file__).resolve().parents[1] / "dvc.yaml")


def leaf_names(ns, prefix: str = "") -> set[str]:
    """The dotted keys of what for_stage returned, read from the object itself (not from its type)."""
    names = set()
    for key, value in vars(ns).items():
        if dataclasses.is_dataclass(value):
            names |= leaf_names(value, f"{prefix}{key}.")
        else:
            names.add(f"{prefix}{key}")
    return names


# --------------------------------------------------------------------------- valid files


def test_repo_params_yaml_validates():
    values = load(ROOT / "params.yaml")
    assert values["scale"] in (2, 3, 4)
    assert values["resize"] in ("matlab", "opencv")


def test_valid_tree_validates():
    values = validate(copy.deepcopy(VALID))
    assert values["train.learning_rate"] == 0.001
    assert values["model.srcnn.filters"] == [64, 32]
    assert values["evaluate.crop_border"] is None


# --------------------------------------------------------------------------- stages


@pytest.mark.parametrize("stage", sorted(STAGE_KEYS))
def test_for_stage_returns_only_its_keys(tmp_path, stage):
    path = write_yaml(tmp_path / "params.yaml", VALID)
    ns = for_stage(stage, path)
    declared = STAGE_KEYS[stage]
    names = leaf_names(ns)
    for name in names:
        assert any(name == d or name.startswith(d + ".") for d in declared), name
    for d in declared:
        assert any(name == d or name.startswith(d + ".") for name in names), d


@pytest.mark.parametrize(
    "stage, undeclared",
    [
        ("evaluate", "train"),
        ("evaluate", "seed"),
        ("train", "download"),
        ("train", "patches"),
        ("patches", "train"),
        ("download", "seed"),
    ],
)
def test_for_stage_undeclared_key_raises(tmp_path, stage, undeclared):
    ns = for_stage(stage, write_yaml(tmp_path / "params.yaml", VALID))
    with pytest.raises(AttributeError):
        getattr(ns, undeclared)


def test_the_patches_stage_reads_only_which_input_the_network_takes(tmp_path):
    """model.arch decides the patches' input (bicubic or LR); the architectures' sections are the train stage's."""
    ns = for_stage("patches", write_yaml(tmp_path / "params.yaml", VALID))
    assert ns.model.arch == "srcnn"
    with pytest.raises(AttributeError):
        ns.model.srcnn  # noqa: B018


def test_for_stage_values(tmp_path):
    path = write_yaml(tmp_path / "params.yaml", VALID)
    train = for_stage("train", path)
    assert train.seed == 42
    assert train.train.epochs == 3
    assert train.model.srcnn.kernel_sizes == [9, 1, 5] and train.model.hyper["kernel_sizes"] == [9, 1, 5]
    with pytest.raises(AttributeError):
        train.model.nonexistent  # noqa: B018
    download = for_stage("download", path)
    assert download.download.div2k_sha256.valid == "0123456789abcdef" * 4


def test_for_stage_validates_whole_file(tmp_path):
    # A bad key that the evaluate stage does not read still stops it.
    path = write_yaml(tmp_path / "params.yaml", tree_with("train.epochs", 0))
    with pytest.raises(ParamsError, match="train.epochs"):
        for_stage("evaluate", path)


def test_every_params_key_is_read_by_some_stage():
    """A key in params.yaml that no stage lists in dvc.yaml would change nothing when edited."""
    listed = {k for keys in STAGE_KEYS.values() for k in keys}
    for name in SCHEMA:
        assert any(name == k or name.startswith(k + ".") for k in listed), name


def test_a_dvc_yaml_key_outside_the_schema_is_refused(tmp_path):
    path = write_yaml(tmp_path / "params.yaml", VALID)
    spec = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    spec["stages"]["train"]["params"].append("train.epoch")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ParamsError, match="stage train lists params key 'train.epoch', which params.yaml does not"):
        for_stage("evaluate", path)


def test_a_stage_whose_dvc_yaml_list_misses_a_key_it_reads_is_refused(tmp_path):
    """dvc.yaml must list every key the stage's code reads, or editing that key would not rerun it."""
    path = write_yaml(tmp_path / "params.yaml", VALID)
    spec = yaml.safe_load((tmp_path / "dvc.yaml").read_text())
    spec["stages"]["train"]["params"].remove("train.batch_size")
    spec["stages"]["evaluate"]["params"].append("seed")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ParamsError, match=r"stage train lists params .*\(not listed: train.batch_size\)"):
        for_stage("train", path)
    with pytest.raises(ParamsError, match=r"stage evaluate lists params .*\(not read: seed\)"):
        for_stage("evaluate", path)
    for_stage("patches", path)  # an untouched stage is fine


def test_stage_params_are_typed_and_frozen(tmp_path):
    train = for_stage("train", write_yaml(tmp_path / "params.yaml", VALID))
    assert isinstance(train, TrainStage) and isinstance(train.train.learning_rate, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.train.epochs = 1


def test_a_stage_run_outside_the_repository_root_says_so(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(VALID))
    with pytest.raises(ParamsError, match="dvc.yaml: no such file; stages run from the repository root"):
        for_stage("train", path)


def test_stage_scripts_paths_are_declared_in_dvc_yaml():
    """Every path on a stage's cmd line is one of its deps or outs (or the folder holding them), so a path is
    renamed in dvc.yaml alone and a half-done rename fails here."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for stage, spec in stages.items():
        declared = set()
        for section in ("deps", "outs", "metrics", "plots"):
            for entry in spec.get(section, []):
                declared.add(next(iter(entry)) if isinstance(entry, dict) else entry)
        args = [a for a in spec["cmd"].split()[2:] if not a.startswith("--")]
        checkpoints = spec["cmd"].split("--checkpoints ")[-1].split()[0] if "--checkpoints" in spec["cmd"] else None
        for arg in args:
            if arg == checkpoints:
                continue  # not a DVC output: git-ignored, deleted once the model is written
            assert arg in declared or any(d.startswith(arg + "/") for d in declared), (stage, arg)


# --------------------------------------------------------------------------- invalid values


@pytest.mark.parametrize(
    "key, value, fragments",
    [
        ("scale", 5, ["scale", "5", "one of 2, 3, 4"]),
        ("resize", "bilinear", ["resize", "bilinear", "'matlab', 'opencv'"]),
        ("download.source", "foo", ["download.source", "foo", "'sample', 'div2k'"]),
        ("model.srcnn.kernel_sizes", [9, 2, 5], ["model.srcnn.kernel_sizes", "odd integers"]),
        ("model.srcnn.filters", [64], ["model.srcnn.filters", "1 entries", "= 2"]),
        ("model.srcnn.filters", [64, 32, 16], ["model.srcnn.filters", "3 entries", "= 2"]),
        ("model.arch", "edsr", ["model.arch", "'srcnn', 'fsrcnn', 'espcn'"]),
        ("model.fsrcnn.m", -1, ["model.fsrcnn.m", "from 0 to 32"]),
        ("model.espcn.activation", "prelu", ["model.espcn.activation", "'tanh', 'relu'"]),
        ("model.espcn.filters", [64], ["model.espcn.filters", "1 entries", "= 2"]),
        ("train.learning_rate", 0, ["train.learning_rate", "greater than 0"]),
        ("train.learning_rate", -0.1, ["train.learning_rate", "greater than 0"]),
        ("train.learning_rate", "fast", ["train.learning_rate", "fast"]),
        ("train.learning_rate", float("nan"), ["train.learning_rate"]),
        ("train.learning_rate", "inf", ["train.learning_rate"]),
        ("train.learning_rate", 1.5, ["train.learning_rate", "at most 1"]),
        ("train.epochs", 0, ["train.epochs", "an integer from 1 to"]),
        ("train.epochs", 2.5, ["train.epochs", "an integer from 1 to"]),
        ("train.batch_size", "abc", ["train.batch_size", "abc", "an integer from 1 to"]),
        ("train.epochs", True, ["train.epochs", "True", "an integer"]),  # bool is an int subclass, value 1
        ("seed", False, ["seed", "an integer"]),
        ("download.div2k_url", "ftp://example.org/DIV2K/", ["download.div2k_url", "http:// or https://"]),
        ("download.div2k_url", "data.vision.ee.ethz.ch/cvl", ["download.div2k_url", "http:// or https://"]),
        ("download.div2k_sha256.train", "abc123", ["download.div2k_sha256.train", "SHA-256"]),
        ("download.div2k_sha256.valid", "g" * 64, ["download.div2k_sha256.valid", "SHA-256"]),
        ("evaluate.crop_border", -1, ["evaluate.crop_border", "null"]),
        ("export.formats", ["onnx", "pt"], ["export.formats", "'pt'", "onnx, tflite, savedmodel"]),
        ("export.formats", ["onnx", "onnx"], ["export.formats", "distinct"]),
        ("export.formats", "onnx", ["export.formats", "a list"]),
    ],
)
def test_invalid_value_refused(key, value, fragments):
    with pytest.raises(ParamsError) as info:
        validate(tree_with(key, value))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_patch_size_below_receptive_field():
    # Receptive field of [9, 1, 5] = 8 + 0 + 4 + 1 = 13 pixels.
    with pytest.raises(ParamsError) as info:
        validate(tree_with("patches.size", 11))
    message = str(info.value)
    assert "patches.size" in message and "13" in message


def test_patch_size_equal_to_receptive_field_accepted():
    assert validate(tree_with("patches.size", 13))["patches.size"] == 13


def test_unknown_key_suggests_close_match():
    tree = tree_without("train.epochs")
    tree["train"]["epoch"] = 3
    with pytest.raises(ParamsError, match=r"unknown key train\.epoch; did you mean train\.epochs"):
        validate(tree)


def test_missing_key_named():
    with pytest.raises(ParamsError, match=r"missing key train\.batch_size"):
        validate(tree_without("train.batch_size"))


def test_section_given_scalar():
    tree = copy.deepcopy(VALID)
    tree["train"] = 5
    with pytest.raises(ParamsError, match=r"train must be a section"):
        validate(tree)


def test_top_level_not_mapping():
    with pytest.raises(ParamsError):
        validate([1, 2, 3])


def test_float_scale_refused():
    with pytest.raises(ParamsError, match="scale"):
        validate(tree_with("scale", 2.0))


# --------------------------------------------------------------------------- accepted variants


def test_learning_rate_string_accepted_as_float():
    values = validate(tree_with("train.learning_rate", "1e-4"))
    assert isinstance(values["train.learning_rate"], float)
    assert values["train.learning_rate"] == 1e-4


def test_learning_rate_1e_4_written_in_yaml(tmp_path):
    text = yaml.safe_dump(VALID, sort_keys=False).replace("learning_rate: 0.001", "learning_rate: 1e-4")
    assert "learning_rate: 1e-4" in text
    path = write_yaml(tmp_path / "params.yaml", VALID)
    path.write_text(text)
    # PyYAML (YAML 1.1) reads 1e-4 (no dot) as a string: the case the schema must accept.
    assert yaml.safe_load(text)["train"]["learning_rate"] == "1e-4"
    values = load(path)
    assert values["train.learning_rate"] == 1e-4
    assert isinstance(for_stage("train", path).train.learning_rate, float)


def test_learning_rate_int_one_accepted_as_float():
    values = validate(tree_with("train.learning_rate", 1))
    assert values["train.learning_rate"] == 1.0 and isinstance(values["train.learning_rate"], float)


def test_crop_border_null_and_int_accepted():
    assert validate(tree_with("evaluate.crop_border", None))["evaluate.crop_border"] is None
    assert validate(tree_with("evaluate.crop_border", 4))["evaluate.crop_border"] == 4


def test_sha256_normalised_to_lowercase():
    values = validate(tree_with("download.div2k_sha256.train", "ABCDEF0123456789" * 4))
    assert values["download.div2k_sha256.train"] == "abcdef0123456789" * 4


def test_load_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="no such file"):
        load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load(bad)


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "srcnn", "check-params", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_cli_good_file(tmp_path):
    result = run_cli(str(write_yaml(tmp_path / "params.yaml", VALID)))
    assert result.returncode == 0, result.stderr
    assert "keys valid" in result.stdout


def test_cli_bad_file(tmp_path):
    result = run_cli(str(write_yaml(tmp_path / "params.yaml", tree_with("train.batch_size", 0))))
    assert result.returncode == 2
    assert "train.batch_size" in result.stderr


# --------------------------------------------------------------------------- evaluate.benchmarks


def test_benchmarks_list_of_names_accepted(tmp_path):
    values = validate(tree_with("evaluate.benchmarks", ["Set5", "Set14"]))
    assert values["evaluate.benchmarks"] == ["Set5", "Set14"]
    path = write_yaml(tmp_path / "params.yaml", tree_with("evaluate.benchmarks", ["Set5"]))
    assert for_stage("evaluate", path).evaluate.benchmarks == ["Set5"]
    assert validate(tree_with("evaluate.benchmarks", None))["evaluate.benchmarks"] == []


@pytest.mark.parametrize(
    "names",
    [
        ["valid"],  # evaluate's own split: it would overwrite the validation metrics, CSV rows and crops
        ["Set5", "Set5"],  # the same set twice
        ["../raw"],
        [".."],
        ["a/b"],
        [""],
        [5],
        {"Set5": "data/benchmarks/Set5"},  # the old mapping form, which `dvc exp run -S` cannot set or clear
        "Set5",
    ],
)
def test_benchmark_names_reserved_duplicate_or_not_a_folder_name_refused(names):
    with pytest.raises(ParamsError, match=r"evaluate\.benchmarks.*list of distinct set names.*not valid"):
        validate(tree_with("evaluate.benchmarks", names))


@pytest.mark.parametrize("key", ["download.train_dir", "download.valid_dir"])
@pytest.mark.parametrize("folder", ["data/raw", "data/raw/train", "./data/raw/valid", "", 3, None])
def test_image_folders_inside_the_download_output_refused(key, folder):
    with pytest.raises(ParamsError, match=rf"{key}.*outside data/raw/"):
        validate(tree_with(key, folder))


@pytest.mark.parametrize("factors", [[], [0.0], [1.5], [1.0, 1.0], ["x"], 0.9, [True]])
def test_hr_scales_refused(factors):
    with pytest.raises(ParamsError, match=r"patches\.hr_scales.*distinct numbers greater than 0"):
        validate(tree_with("patches.hr_scales", factors))


def test_hr_scales_accept_dvc_number_strings():
    # `dvc exp run -S 'patches.hr_scales=[1.0,0.9]'` writes numbers; PyYAML may read e.g. 9e-1 as a string.
    assert validate(tree_with("patches.hr_scales", [1, "9e-1", 0.6]))["patches.hr_scales"] == [1.0, 0.9, 0.6]


@pytest.mark.parametrize("stride", [0, -1, 513, 1.5, True])
def test_stride_refused(stride):
    with pytest.raises(ParamsError, match=r"patches\.stride.*null \(random crops"):
        validate(tree_with("patches.stride", stride))


@pytest.mark.parametrize("depth", [12, 32, "16", 16.0, True, None])
def test_bit_depth_refused(depth):
    with pytest.raises(
        ParamsError, match=r"^params\.yaml: download\.bit_depth = .* is invalid; allowed: one of 8, 16$"
    ):
        validate(tree_with("download.bit_depth", depth))


@pytest.mark.parametrize("source", ["sample", "div2k"])
def test_sixteen_bits_only_with_the_folder_source(source):
    # The sample photos and DIV2K are 8-bit: 16 bits would only be their values ×257. One line, naming the key.
    tree = tree_with("download.bit_depth", 16)
    tree["download"]["source"] = source
    with pytest.raises(ParamsError) as err:
        validate(tree)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: download.bit_depth = 16 is invalid with download.source")
    assert "only with download.source = 'folder'" in message


def test_sixteen_bits_with_the_folder_source(tmp_path):
    tree = tree_with("download.bit_depth", 16)
    tree["download"]["source"] = "folder"
    assert validate(tree)["download.bit_depth"] == 16
    assert for_stage("download", write_yaml(tmp_path / "params.yaml", tree)).download.bit_depth == 16
    assert validate(copy.deepcopy(VALID))["download.bit_depth"] == 8


# --------------------------------------------------------------------------- code dependencies in dvc.yaml


def package_imports(path: Path) -> set[str]:
    """Modules of the srcnn package that `path` imports anywhere (top level or inside functions)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("srcnn"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # `from srcnn import training`
        elif isinstance(node, ast.ImportFrom) and node.level == 1:  # `from .io import …` inside the package
            found.add(f"srcnn.{node.module}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("srcnn"))
    return {m for m in found if (ROOT / (m.replace(".", "/") + ".py")).is_file()}


def import_closure(script: Path) -> set[str]:
    todo, seen = [script], set()
    while todo:
        for module in package_imports(todo.pop()):
            path = module.replace(".", "/") + ".py"
            if path not in seen:
                seen.add(path)
                todo.append(ROOT / path)
    return seen


@pytest.mark.parametrize("stage", sorted(STAGE_KEYS))
def test_every_module_a_stage_imports_is_a_dependency_in_dvc_yaml(stage):
    """Editing any module a stage's script imports, directly or not, must rerun that stage (and only those)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    script = spec["cmd"].split()[1]
    code_deps = {d for d in spec["deps"] if d.endswith(".py")}
    assert code_deps == {script} | import_closure(ROOT / script)


@pytest.mark.parametrize("setting", [False, True, "auto"])
def test_mixed_precision_takes_auto(setting):
    got = validate(tree_with("train.mixed_precision", setting))["train.mixed_precision"]
    assert got == setting and type(got) is type(setting)


@pytest.mark.parametrize("setting", ["bf16", "true", 1, None, "AUTO"])
def test_mixed_precision_refused(setting):
    with pytest.raises(
        ParamsError,
        match=r"^params\.yaml: train\.mixed_precision = .* is invalid; allowed: one of False, True, 'auto'$",
    ):
        validate(tree_with("train.mixed_precision", setting))


def test_float32_final_epochs_at_most_the_epochs():
    tree = tree_with("train.float32_final_epochs", 3)
    tree["train"]["epochs"] = 3
    assert validate(tree)["train.float32_final_epochs"] == 3
    tree["train"]["float32_final_epochs"] = 4
    with pytest.raises(
        ParamsError,
        match=r"^params\.yaml: train\.float32_final_epochs = 4 is more than train\.epochs = 3; allowed: an "
        r"integer from 0 to train\.epochs$",
    ):
        validate(tree)


# --------------------------------------------------------------------------- architectures (model.arch)


def test_keys_of_before_model_arch_are_named_with_their_new_place():
    """A params.yaml of an earlier version (`model.filters` at the top of `model:`) is refused naming where the
    key went, not with a guess."""
    tree = copy.deepcopy(VALID)
    tree["model"]["kernel_sizes"] = [9, 5, 5]
    with pytest.raises(ParamsError, match=r"model\.kernel_sizes is now model\.srcnn\.kernel_sizes"):
        validate(tree)


@pytest.mark.parametrize("arch", ["fsrcnn", "espcn"])
def test_networks_on_the_lr_image_take_crops_on_the_lr_grid(arch):
    """patches.size and patches.stride are HR pixels: for a network on the LR image both must be whole LR pixels."""
    tree = tree_with("model.arch", arch)
    tree["patches"]["size"] = 33
    with pytest.raises(ParamsError, match=r"patches\.size = 33 is not a multiple of scale = 2"):
        validate(tree)
    tree["patches"]["size"], tree["patches"]["stride"] = 48, 7
    with pytest.raises(ParamsError, match=r"patches\.stride = 7 is not a multiple of scale = 2"):
        validate(tree)
    tree["patches"]["stride"] = 14
    assert validate(tree)["model.arch"] == arch


def test_only_the_chosen_architectures_section_reaches_the_model(tmp_path):
    """`-S model.arch=fsrcnn` picks FSRCNN's own section; SRCNN's keys do not apply to it, nor the reverse."""
    tree = tree_with("model.arch", "fsrcnn")
    tree["patches"]["size"] = 48
    train = for_stage("train", write_yaml(tmp_path / "params.yaml", tree))
    assert train.model.hyper == {"d": 56, "s": 12, "m": 4}
    assert recorded_model(train.model) == {"arch": "fsrcnn", "d": 56, "s": 12, "m": 4}
    srcnn = for_stage("train", write_yaml(tmp_path / "params.yaml", VALID))
    assert recorded_model(srcnn.model) == {"filters": [64, 32], "kernel_sizes": [9, 1, 5]}  # as before model.arch


def test_records_of_earlier_versions_read_in_todays_layout():
    old = {"model": {"filters": [64, 32], "kernel_sizes": [9, 5, 5]}, "train": {"epochs": 20}}
    assert current_tree(old)["model"] == {"arch": "srcnn", "srcnn": {"filters": [64, 32], "kernel_sizes": [9, 5, 5]}}
    assert current_tree(current_tree(old)) == current_tree(old)
