"""The download stage end to end, fault by fault: `srcnn.data.sources.download(params, data/raw)`.

Each fault runs twice: once over a previous good `data/raw` and once with
none. Afterwards `data/` must hold byte for byte what it held before (or
nothing), with no temporary file or folder beside `data/raw`, and the error
must be one line naming the URL, file or key at fault. The HTTP server is the
real loopback server of test_div2k.py (it counts bytes served); zips and PNGs
are real files.
"""

from __future__ import annotations

import copy
import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

# pytest puts tests/ on sys.path: reuse the loopback server and real-image builders.
from conftest import _crops, _png, _Server, _sha, _symlink_entry, _zip, stage_command

from srcnn import params
from srcnn.data import div2k, fetch, safe_zip, sources
from srcnn.data.fetch import DownloadError
from srcnn.data.io import ImageError
from srcnn.params import DownloadParams, Sha256Pair

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it

PROJECT = Path(__file__).resolve().parents[1]
TRAIN_ZIP, VALID_ZIP = div2k.ARCHIVES["train"], div2k.ARCHIVES["valid"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pngs() -> dict[str, bytes]:
    """Real PNG bytes by zip entry name: 4 train (0001-0004), 2 valid (0801-0802)."""
    data = [_png(c) for c in _crops()]
    train = {f"DIV2K_train_HR/{i:04d}.png": data[i - 1] for i in range(1, 5)}
    valid = {f"DIV2K_valid_HR/{801 + i:04d}.png": data[4 + i] for i in range(2)}
    return {**train, **valid}


def split_entries(pngs: dict[str, bytes], split: str) -> dict[str, bytes]:
    return {name: payload for name, payload in pngs.items() if name.startswith(div2k.FOLDERS[split] + "/")}


@pytest.fixture
def zips(pngs) -> dict[str, bytes]:
    return {split: _zip(split_entries(pngs, split)) for split in ("train", "valid")}


@pytest.fixture
def server(zips):
    srv = _Server()
    srv.add(TRAIN_ZIP, zips["train"])
    srv.add(VALID_ZIP, zips["valid"])
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    """Download cache inside tmp, millisecond retry delays, small chunks (drops leave a partial .part)."""
    monkeypatch.setenv("SRCNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.01)
    monkeypatch.setattr(fetch, "TIMEOUT_S", (2.0, 3.0))  # as in test_div2k: no timeout from a loaded machine
    monkeypatch.setattr(fetch, "CHUNK_BYTES", 1024)
    monkeypatch.setattr(fetch, "RETRIES", 2)


def make_params(url: str, sha: dict[str, str], train_limit=None, valid_limit=None) -> DownloadParams:
    """What the stage gets from params.for_stage("download").download."""
    return DownloadParams(
        source="div2k",
        div2k_url=url,
        div2k_sha256=Sha256Pair(**sha),
        train_limit=train_limit,
        valid_limit=valid_limit,
        train_dir="data/images/train",
        valid_dir="data/images/valid",
    )


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root (dotfiles included) with its bytes; None for folders."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def write_previous(raw: Path) -> None:
    """A previous good data/raw, distinct from anything the server holds."""
    previous = {"train/0001.png": b"old train", "train/0002.png": b"old 2", "valid/0801.png": b"old v"}
    for rel, payload in previous.items():
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw / rel).write_bytes(payload)


def expected_raw(pngs: dict[str, bytes], train: int = 4, valid: int = 2) -> dict[str, bytes | None]:
    """The snapshot of data/raw after a good download keeping `train` and `valid` images."""
    tree: dict[str, bytes | None] = {"train": None, "valid": None}
    for split, keep in (("train", train), ("valid", valid)):
        for name, payload in sorted(split_entries(pngs, split).items())[:keep]:
            tree[f"{split}/{Path(name).name}"] = payload
    return dict(sorted(tree.items()))


def assert_cache_clean(cache: Path, allow_part: bool = False) -> None:
    """No temporary files in the cache; every final-named zip in it is a verified one."""
    for path in cache.rglob("*"):
        if path.is_dir():
            assert path == cache / "div2k", path
        elif path.suffix == ".part":
            assert allow_part, path
        else:
            assert path.name in div2k.ARCHIVES.values(), path


def local_dir(tmp_path: Path, files: dict[str, bytes]) -> Path:
    src = tmp_path / "src"
    for rel, payload in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(payload)
    return src


# --------------------------------------------------------------------------- faults


def _hostile(pngs, entry: str) -> bytes:
    """A valid zip with one hostile entry besides its good images."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload in split_entries(pngs, "valid").items():
            zf.writestr(name, payload)
        if entry == "symlink":
            zf.writestr(_symlink_entry("DIV2K_valid_HR/0803.png", "../../evil.png"), "../../evil.png")
        else:
            zf.writestr(zipfile.ZipInfo(entry), b"evil")
    return buf.getvalue()


def _flip_byte_inside(payload: bytes, member: bytes) -> bytes:
    """Corrupt one byte in the middle of a stored member: the zip opens, the CRC fails."""
    at = payload.index(member) + len(member) // 2
    return payload[:at] + bytes([payload[at] ^ 0xFF]) + payload[at + 1 :]


def fault(name, ctx):
    """Set up fault `name`; return (url, sha256, exception type, fragments of the message).

    ctx: server, zips, pngs, tmp_path, monkeypatch.
    """
    srv, zips, pngs, tmp, mp = ctx["server"], ctx["zips"], ctx["pngs"], ctx["tmp_path"], ctx["monkeypatch"]
    sha = {split: _sha(z) for split, z in zips.items()}
    valid_url = f"{srv.base}/{VALID_ZIP}"

    def serve_valid(payload: bytes):
        srv.add(VALID_ZIP, payload)
        sha["valid"] = _sha(payload)

    if name == "404":
        del srv.state.files[f"/div2k/{VALID_ZIP}"]
        return srv.base, sha, DownloadError, [valid_url, "HTTP 404"]
    if name == "persistent 503":
        srv.script(VALID_ZIP, *["503"] * 10)
        return srv.base, sha, DownloadError, [valid_url, "giving up after 3 attempts", "HTTP 503"]
    if name == "checksum mismatch":
        good = sha["valid"]
        sha["valid"] = "0" * 64
        return srv.base, sha, DownloadError, [f"checksum mismatch for {valid_url}", "0" * 64, good]
    if name == "truncated zip":
        serve_valid(zips["valid"][:-300])
        return srv.base, sha, DownloadError, [VALID_ZIP, "not a valid zip archive"]
    if name == "corrupt member":  # found while extracting, after train was already extracted
        serve_valid(_flip_byte_inside(zips["valid"], pngs["DIV2K_valid_HR/0802.png"]))
        return srv.base, sha, DownloadError, [VALID_ZIP, "not a valid zip archive", "Bad CRC-32"]
    if name == "../evil.png":
        serve_valid(_hostile(pngs, "../evil.png"))
        return srv.base, sha, DownloadError, [VALID_ZIP, "refusing zip entry with '..': '../evil.png'"]
    if name == "absolute path":
        serve_valid(_hostile(pngs, "/tmp/abs-evil.png"))
        return srv.base, sha, DownloadError, [VALID_ZIP, "refusing absolute zip entry '/tmp/abs-evil.png'"]
    if name == "symlink":
        serve_valid(_hostile(pngs, "symlink"))
        return srv.base, sha, DownloadError, [VALID_ZIP, "refusing symlink zip entry 'DIV2K_valid_HR/0803.png'"]
    if name == "missing valid folder":
        serve_valid(_zip({"Other/0801.png": pngs["DIV2K_valid_HR/0801.png"]}))
        return srv.base, sha, DownloadError, [VALID_ZIP, "holds no DIV2K_valid_HR/ folder"]
    if name == "gap in ids":  # non-official checksums: ids must be consecutive
        entries = split_entries(pngs, "valid")
        serve_valid(
            _zip(
                {
                    "DIV2K_valid_HR/0801.png": entries["DIV2K_valid_HR/0801.png"],
                    "DIV2K_valid_HR/0803.png": entries["DIV2K_valid_HR/0802.png"],
                }
            )
        )
        return srv.base, sha, DownloadError, [f"{VALID_ZIP}: 2 of 3 images; missing 0802.png"]
    if name == "official count short":
        # The official-checksum path, scaled down: these zips play the official release of 4 + 3 images.
        mp.setattr(div2k, "OFFICIAL_SHA256", dict(sha))
        mp.setattr(div2k, "OFFICIAL_IDS", {"train": range(1, 5), "valid": range(801, 804)})
        return srv.base, sha, DownloadError, [f"{VALID_ZIP}: 2 of 3 images; missing 0803.png"]
    if name == "interrupted extraction":
        real = safe_zip.shutil.copyfileobj
        calls = []

        def interrupted(*args, **kwargs):  # Ctrl-C while writing the third image
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        mp.setattr(safe_zip.shutil, "copyfileobj", interrupted)
        return srv.base, sha, KeyboardInterrupt, []
    if name == "file:// no such folder":
        url = (tmp / "nowhere").as_uri()
        return url, sha, DownloadError, [url, "no such folder"]
    if name == "file:// neither zip nor folder":
        src = local_dir(tmp, {TRAIN_ZIP: zips["train"], "notes.txt": b"x"})
        return src.as_uri(), sha, DownloadError, [src.as_uri(), "holds neither DIV2K_valid_HR.zip nor"]
    if name == "file:// zip checksum mismatch":
        src = local_dir(tmp, {TRAIN_ZIP: zips["train"], VALID_ZIP: zips["valid"][:-1] + b"!"})
        return src.as_uri(), sha, DownloadError, [f"checksum mismatch for {src.as_uri()}/{VALID_ZIP}"]
    if name == "file:// folder corrupt png":
        files = dict(pngs)
        files["DIV2K_valid_HR/0802.png"] = pngs["DIV2K_valid_HR/0802.png"][:60]  # truncated PNG
        src = local_dir(tmp, files)
        bad = src / "DIV2K_valid_HR" / "0802.png"
        return src.as_uri(), sha, ImageError, [str(bad), "not a readable image"]
    if name == "file:// folder gap":
        files = {n: p for n, p in pngs.items() if n != "DIV2K_train_HR/0002.png"}
        src = local_dir(tmp, files)
        return src.as_uri(), sha, DownloadError, [f"{src / 'DIV2K_train_HR'}: 3 of 4 images; missing 0002.png"]
    raise AssertionError(name)


FAULTS = [
    "404",
    "persistent 503",
    "checksum mismatch",
    "truncated zip",
    "corrupt member",
    "../evil.png",
    "absolute path",
    "symlink",
    "missing valid folder",
    "gap in ids",
    "official count short",
    "interrupted extraction",
    "file:// no such folder",
    "file:// neither zip nor folder",
    "file:// zip checksum mismatch",
    "file:// folder corrupt png",
    "file:// folder gap",
]


@pytest.mark.parametrize("previous", ["previous good data", "no data yet"])
@pytest.mark.parametrize("name", FAULTS)
def test_fault_keeps_previous_data_raw(name, previous, server, zips, pngs, tmp_path, monkeypatch):
    data, raw = tmp_path / "data", tmp_path / "data" / "raw"
    if previous == "previous good data":
        write_previous(raw)
    before = snapshot(data)
    ctx = dict(server=server, zips=zips, pngs=pngs, tmp_path=tmp_path, monkeypatch=monkeypatch)
    url, sha, error, fragments = fault(name, ctx)

    with pytest.raises(error) as info:
        sources.download(make_params(url, sha), raw)

    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message
    # data/raw is exactly what it was, byte for byte, and nothing sits beside it.
    assert snapshot(data) == before
    assert raw.exists() == (previous == "previous good data")
    assert not Path("/tmp/abs-evil.png").exists() and not (tmp_path / "evil.png").exists()
    assert_cache_clean(tmp_path / "cache", allow_part=name == "persistent 503")


# --------------------------------------------------------------------------- good runs


def test_normal_download_replaces_previous_data(server, zips, pngs, tmp_path):
    raw = tmp_path / "data" / "raw"
    write_previous(raw)
    counts = sources.download(make_params(server.base, {s: _sha(z) for s, z in zips.items()}), raw)
    assert counts == {"train": 4, "valid": 2}
    assert snapshot(tmp_path / "data") == {"raw": None, **{f"raw/{k}": v for k, v in expected_raw(pngs).items()}}
    assert server.requests(TRAIN_ZIP) == server.requests(VALID_ZIP) == 1
    assert_cache_clean(tmp_path / "cache")


@pytest.mark.parametrize(
    "script, resent",
    [
        (["drop"], "only what was in flight"),  # resumed with Range: about one file's worth served
        (["500"], "nothing"),
        (["drop", "ignore_range"], "the whole file"),  # server ignores Range: start over, not append
    ],
)
def test_transient_faults_end_in_the_same_data(script, resent, server, zips, pngs, tmp_path):
    raw = tmp_path / "data" / "raw"
    size = len(zips["train"])
    server.script(TRAIN_ZIP, *script)
    counts = sources.download(make_params(server.base, {s: _sha(z) for s, z in zips.items()}), raw)
    assert counts == {"train": 4, "valid": 2}
    assert snapshot(raw) == expected_raw(pngs)
    assert server.requests(TRAIN_ZIP) == 2
    served = server.served(TRAIN_ZIP)
    if resent == "only what was in flight":
        assert server.ranges(TRAIN_ZIP)[1] is not None
        assert size <= served < size + size // 4
    elif resent == "nothing":
        assert served == size
    else:
        assert served >= size + size // 2 - 4096
    assert (tmp_path / "cache" / "div2k" / TRAIN_ZIP).read_bytes() == zips["train"]
    assert_cache_clean(tmp_path / "cache")


def test_official_layout_accepted_when_complete(server, zips, pngs, tmp_path, monkeypatch):
    sha = {s: _sha(z) for s, z in zips.items()}
    monkeypatch.setattr(div2k, "OFFICIAL_SHA256", sha)
    monkeypatch.setattr(div2k, "OFFICIAL_IDS", {"train": range(1, 5), "valid": range(801, 803)})
    assert div2k.expected_for(sha) == {"train": range(1, 5), "valid": range(801, 803)}
    counts = sources.download(make_params(server.base, sha), tmp_path / "raw")
    assert counts == {"train": 4, "valid": 2}


def test_file_url_with_zips_copies_and_verifies_without_network(zips, pngs, tmp_path):
    src = local_dir(tmp_path, {TRAIN_ZIP: zips["train"], VALID_ZIP: zips["valid"]})
    raw = tmp_path / "data" / "raw"
    sha = {s: _sha(z) for s, z in zips.items()}
    assert sources.download(make_params(src.as_uri() + "/", sha), raw) == {"train": 4, "valid": 2}
    assert snapshot(raw) == expected_raw(pngs)
    # Verified copies in the cache: a second run needs neither the folder nor the network.
    assert snapshot(tmp_path / "cache" / "div2k") == {TRAIN_ZIP: zips["train"], VALID_ZIP: zips["valid"]}
    for path in src.iterdir():
        path.unlink()
    src.rmdir()
    src.mkdir()  # the folder must exist, but its zips are not read again
    (src / TRAIN_ZIP).write_bytes(b"not read")
    (src / VALID_ZIP).write_bytes(b"not read")
    assert sources.download(make_params(src.as_uri(), sha), raw) == {"train": 4, "valid": 2}
    assert snapshot(raw) == expected_raw(pngs)


def test_file_url_with_extracted_folders(pngs, tmp_path):
    src = local_dir(tmp_path, {**pngs, "DIV2K_train_HR/Thumbs.db": b"x"})
    raw = tmp_path / "data" / "raw"
    sha = {"train": "a" * 64, "valid": "b" * 64}  # no archive, so no checksum to check
    assert sources.download(make_params(src.as_uri(), sha), raw) == {"train": 4, "valid": 2}
    assert snapshot(raw) == expected_raw(pngs)
    assert not (tmp_path / "cache").exists()  # nothing copied to the download cache


def test_file_url_mixing_a_zip_and_a_folder(zips, pngs, tmp_path):
    src = local_dir(tmp_path, {TRAIN_ZIP: zips["train"], **split_entries(pngs, "valid")})
    sha = {"train": _sha(zips["train"]), "valid": "b" * 64}
    assert sources.download(make_params(src.as_uri(), sha), tmp_path / "raw") == {"train": 4, "valid": 2}
    assert snapshot(tmp_path / "raw") == expected_raw(pngs)


@pytest.mark.parametrize("way", ["http", "file:// zips", "file:// folders"])
def test_limits_keep_the_first_images_by_name(way, server, zips, pngs, tmp_path):
    sha = {s: _sha(z) for s, z in zips.items()}
    if way == "http":
        url = server.base
    else:
        files = {TRAIN_ZIP: zips["train"], VALID_ZIP: zips["valid"]} if way == "file:// zips" else pngs
        url = local_dir(tmp_path, files).as_uri()
    raw = tmp_path / "data" / "raw"
    assert sources.download(make_params(url, sha, train_limit=2, valid_limit=1), raw) == {"train": 2, "valid": 1}
    assert snapshot(raw) == expected_raw(pngs, train=2, valid=1)
    # A limit above the count keeps everything.
    assert sources.download(make_params(url, sha, train_limit=1000), raw) == {"train": 4, "valid": 2}
    assert snapshot(raw) == expected_raw(pngs)


# --------------------------------------------------------------------------- layout messages


def test_layout_error_names_the_missing_images():
    names = [f"{i:04d}.png" for i in range(801, 901) if i not in (805, 811, 899)]
    with pytest.raises(DownloadError) as info:
        div2k.check_layout(VALID_ZIP, names, div2k.OFFICIAL_IDS["valid"])
    assert str(info.value) == "DIV2K_valid_HR.zip: 97 of 100 images; missing 0805.png, 0811.png, 0899.png"


def test_layout_error_stays_short_and_names_strangers():
    names = [f"{i:04d}.png" for i in range(1, 781)] + ["0801.png", "extra.png"]
    with pytest.raises(DownloadError) as info:
        div2k.check_layout(TRAIN_ZIP, names, div2k.OFFICIAL_IDS["train"])
    assert str(info.value) == (
        "DIV2K_train_HR.zip: 780 of 800 images; missing 0781.png, 0782.png, 0783.png, 0784.png, 0785.png, "
        "0786.png, 0787.png, 0788.png, 0789.png, 0790.png and 10 more; unexpected 0801.png, extra.png"
    )


def test_official_expectation_on_a_real_100_entry_zip(tmp_path):
    png = _png(_crops()[0][:4, :4])
    archive = tmp_path / VALID_ZIP
    archive.write_bytes(_zip({f"DIV2K_valid_HR/{i:04d}.png": png for i in range(801, 901) if i != 850}))
    with pytest.raises(DownloadError, match="99 of 100 images; missing 0850.png$"):
        div2k.extract_images(archive, "DIV2K_valid_HR", tmp_path / "out", ids=div2k.OFFICIAL_IDS["valid"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [VALID_ZIP]


def test_official_checksums_mean_the_official_layout():
    assert div2k.expected_for(div2k.OFFICIAL_SHA256) == div2k.OFFICIAL_IDS
    assert len(div2k.OFFICIAL_IDS["train"]) == 800 and len(div2k.OFFICIAL_IDS["valid"]) == 100
    other = {"train": "a" * 64, "valid": div2k.OFFICIAL_SHA256["valid"]}
    assert div2k.expected_for(other) == {"train": div2k.CONSECUTIVE, "valid": div2k.CONSECUTIVE}


# --------------------------------------------------------------------------- params


def _download_tree(**changes) -> dict:
    tree = yaml.safe_load((PROJECT / "params.yaml").read_text())
    tree = copy.deepcopy(tree)
    tree["download"].update(changes)
    return tree


@pytest.mark.parametrize("value", [None, 1, 100, 800])
def test_limit_values_accepted(value):
    values = params.validate(_download_tree(train_limit=value, valid_limit=value))
    assert values["download.train_limit"] == values["download.valid_limit"] == value


@pytest.mark.parametrize("value", [0, -1, 2.5, "5", True, [5]])
@pytest.mark.parametrize("key", ["train_limit", "valid_limit"])
def test_limit_values_refused(key, value):
    with pytest.raises(params.ParamsError) as info:
        params.validate(_download_tree(**{key: value}))
    assert f"download.{key}" in str(info.value) and "null (all images) or an integer from 1" in str(info.value)


@pytest.mark.parametrize("url", ["file:///data/DIV2K/", "file:///mnt/my%20disk/DIV2K", "http://mirror/DIV2K/"])
def test_file_urls_accepted(url):
    assert params.validate(_download_tree(div2k_url=url))["download.div2k_url"] == url


@pytest.mark.parametrize("url", ["file://data/DIV2K", "file:/data", "/data/DIV2K", "file:///"])
def test_bad_urls_refused_with_the_allowed_forms(url):
    with pytest.raises(params.ParamsError) as info:
        params.validate(_download_tree(div2k_url=url))
    assert "download.div2k_url" in str(info.value)
    assert "http:// or https:// URL, or a file:/// URL" in str(info.value)


# --------------------------------------------------------------------------- the stage script


def test_stage_script_reports_a_corrupt_png_in_one_line(pngs, tmp_path):
    """`python stages/download.py` on a file:// folder with a truncated PNG: exit 2, file named, old data kept."""
    files = dict(pngs)
    files["DIV2K_train_HR/0003.png"] = pngs["DIV2K_train_HR/0003.png"][:100]
    src = local_dir(tmp_path, files)
    work = tmp_path / "work"
    work.mkdir()
    # Not the official checksums, so the folder need not hold all 800 + 100 images.
    tree = _download_tree(
        source="div2k", div2k_url=src.as_uri(), train_limit=3, div2k_sha256={"train": "a" * 64, "valid": "b" * 64}
    )
    (work / "params.yaml").write_text(yaml.safe_dump(tree))
    shutil.copy(PROJECT / "dvc.yaml", work / "dvc.yaml")
    write_previous(work / "data" / "raw")
    before = snapshot(work / "data")
    env = {**os.environ, "SRCNN_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(stage_command("download"), cwd=work, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    bad = src / "DIV2K_train_HR" / "0003.png"
    assert f"error in stage download: {bad}: not a readable image" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(work / "data") == before
