"""Tests for srcnn.data.div2k against a real HTTP server on 127.0.0.1.

The server is a ThreadingHTTPServer in a thread. It serves small DIV2K-shaped
zips built from real image crops, honours Range requests, counts requests and
bytes per path, and can be scripted per request to misbehave (HTTP errors,
connections dropped half-way, Range ignored, a stalled body).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import N_TRAIN, N_VALID, _crops, _png, _Server, _sha, _symlink_entry, _zip, stage_command

from srcnn.data import div2k, fetch
from srcnn.data.div2k import download_div2k, extract_images
from srcnn.data.fetch import DownloadError, fetch_archive

# --------------------------------------------------------------------------- fixtures: data


@pytest.fixture(scope="module")
def dataset():
    """Train/valid zips laid out like DIV2K plus the source pixels of each image."""
    crops = _crops()
    pngs = [_png(c) for c in crops]
    train = {f"DIV2K_train_HR/{i + 1:04d}.png": pngs[i] for i in range(N_TRAIN)}
    valid = {f"DIV2K_valid_HR/{801 + i:04d}.png": pngs[N_TRAIN + i] for i in range(N_VALID)}
    # A README at the top level, like real archives sometimes have: must be ignored.
    zips = {
        "train": _zip({"DIV2K_train_HR/": b"", **train, "readme.txt": b"hi"}),
        "valid": _zip(valid),
    }
    pixels = {Path(n).name: crops[i] for i, n in enumerate([*train, *valid])}
    return {"zips": zips, "sha": {k: _sha(v) for k, v in zips.items()}, "pixels": pixels, "pngs": {**train, **valid}}


@pytest.fixture
def server(dataset):
    srv = _Server()
    for split, payload in dataset["zips"].items():
        srv.add(div2k.ARCHIVES[split], payload)
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Real retry logic, millisecond delays, short read timeout."""
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.01)
    # 3 s between two 1 KiB reads only when the server stalls on purpose: a loaded machine (the suite runs in
    # two workers) must not cause a timeout, and a retry, that the request counts below would see.
    monkeypatch.setattr(fetch, "TIMEOUT_S", (2.0, 3.0))
    # Small chunks so a dropped connection leaves a partial .part on disk.
    monkeypatch.setattr(fetch, "CHUNK_BYTES", 1024)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


TRAIN_ZIP = div2k.ARCHIVES["train"]


# --------------------------------------------------------------------------- constants


def test_official_constants_are_complete():
    assert set(div2k.OFFICIAL_SHA256) == set(div2k.ARCHIVES) == set(div2k.FOLDERS) == {"train", "valid"}
    for digest in div2k.OFFICIAL_SHA256.values():
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert div2k.OFFICIAL_URL.startswith("https://") and div2k.OFFICIAL_URL.endswith("/")


# --------------------------------------------------------------------------- happy path


def test_download_extracts_pixel_identical_images(server, dataset, tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    out.mkdir()
    # base URL without trailing slash on purpose
    counts = download_div2k(server.base, out, cache, sha256=dataset["sha"], progress=False)

    assert counts == {"train": N_TRAIN, "valid": N_VALID}
    assert sorted(p.name for p in (out / "train").iterdir()) == [f"{i:04d}.png" for i in range(1, N_TRAIN + 1)]
    assert sorted(p.name for p in (out / "valid").iterdir()) == ["0801.png", "0802.png"]
    for split in ("train", "valid"):
        for png in (out / split).iterdir():
            rgb = cv2.cvtColor(cv2.imread(str(png), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
            np.testing.assert_array_equal(rgb, dataset["pixels"][png.name])
    # archives cached under their final names, no leftovers
    assert _tree(cache) == set(div2k.ARCHIVES.values())
    assert (cache / TRAIN_ZIP).read_bytes() == dataset["zips"]["train"]
    # no temp folders left beside out/, nothing printed
    assert sorted(os.listdir(tmp_path)) == ["cache", "out"]
    assert sorted(os.listdir(out)) == ["train", "valid"]
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_goes_to_stderr_only(server, dataset, tmp_path, capsys):
    fetch_archive(server.base + "/" + TRAIN_ZIP, tmp_path / TRAIN_ZIP, dataset["sha"]["train"], progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert TRAIN_ZIP in captured.err


def test_second_call_reuses_cache_without_network(server, dataset, tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "a").mkdir()
    download_div2k(server.base + "/", tmp_path / "a", cache, sha256=dataset["sha"], progress=False)
    before = dict(server.state.requests)
    assert sum(before.values()) == 2

    (tmp_path / "b").mkdir()
    counts = download_div2k(server.base, tmp_path / "b", cache, sha256=dataset["sha"], progress=False)
    assert counts == {"train": N_TRAIN, "valid": N_VALID}
    assert dict(server.state.requests) == before


def test_corrupt_cached_file_is_replaced(server, dataset, tmp_path):
    dest = tmp_path / TRAIN_ZIP
    dest.write_bytes(b"not the archive")
    fetch_archive(server.base + "/" + TRAIN_ZIP, dest, dataset["sha"]["train"], progress=False)
    assert dest.read_bytes() == dataset["zips"]["train"]
    assert server.requests(TRAIN_ZIP) == 1


# --------------------------------------------------------------------------- failures


def test_checksum_mismatch(server, dataset, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    good = cache / "DIV2K_valid_HR.zip"
    good.write_bytes(dataset["zips"]["valid"])
    os.utime(good, (1_000_000, 1_000_000))
    wrong = "0" * 64
    url = server.base + "/" + TRAIN_ZIP

    with pytest.raises(DownloadError) as err:
        fetch_archive(url, cache / TRAIN_ZIP, wrong, progress=False)

    msg = str(err.value)
    assert url in msg and wrong in msg and dataset["sha"]["train"] in msg
    assert "\n" not in msg
    assert not (cache / TRAIN_ZIP).exists()
    assert not (cache / (TRAIN_ZIP + ".part")).exists()
    assert good.read_bytes() == dataset["zips"]["valid"] and good.stat().st_mtime == 1_000_000
    assert _tree(cache) == {good.name}


def test_404_is_not_retried(server, tmp_path):
    url = server.base + "/missing.zip"
    with pytest.raises(DownloadError) as err:
        fetch_archive(url, tmp_path / "missing.zip", "a" * 64, progress=False)
    assert url in str(err.value) and "404" in str(err.value)
    assert server.requests("missing.zip") == 1
    assert list(tmp_path.iterdir()) == []


def test_500_once_then_success(server, dataset, tmp_path):
    server.script(TRAIN_ZIP, "500")
    dest = fetch_archive(server.base + "/" + TRAIN_ZIP, tmp_path / TRAIN_ZIP, dataset["sha"]["train"], progress=False)
    assert dest.read_bytes() == dataset["zips"]["train"]
    assert server.requests(TRAIN_ZIP) == 2


def test_retry_after_is_honoured(server, dataset, tmp_path):
    """A 503 with `Retry-After: 1` (a server asking to be left alone for a second) is retried after that second,
    not after the backoff (10 ms in these tests); the old retry loop ignored the header."""
    server.script(TRAIN_ZIP, "503 retry-after 1")
    start = time.monotonic()
    dest = fetch_archive(server.base + "/" + TRAIN_ZIP, tmp_path / TRAIN_ZIP, dataset["sha"]["train"], progress=False)
    assert time.monotonic() - start >= 1.0
    assert dest.read_bytes() == dataset["zips"]["train"] and server.requests(TRAIN_ZIP) == 2


def test_persistent_500_gives_up_after_bounded_retries(server, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "RETRIES", 2)
    server.script(TRAIN_ZIP, *["503"] * 10)
    url = server.base + "/" + TRAIN_ZIP
    with pytest.raises(DownloadError) as err:
        fetch_archive(url, tmp_path / TRAIN_ZIP, "a" * 64, progress=False)
    assert url in str(err.value) and "503" in str(err.value)
    assert server.requests(TRAIN_ZIP) == 3
    assert not (tmp_path / TRAIN_ZIP).exists()


def test_connection_refused_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "RETRIES", 1)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.zip"
    with pytest.raises(DownloadError) as err:
        fetch_archive(url, tmp_path / "x.zip", "a" * 64, progress=False)
    assert url in str(err.value) and "\n" not in str(err.value)


def test_dropped_connection_resumes_with_range(server, dataset, tmp_path):
    size = len(dataset["zips"]["train"])
    server.script(TRAIN_ZIP, "drop")
    dest = fetch_archive(server.base + "/" + TRAIN_ZIP, tmp_path / TRAIN_ZIP, dataset["sha"]["train"], progress=False)

    assert dest.read_bytes() == dataset["zips"]["train"]
    assert server.requests(TRAIN_ZIP) == 2
    first, second = server.ranges(TRAIN_ZIP)
    assert first is None
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", second).group(1))
    assert 0 < resumed_at <= size // 2
    # Only what was lost in flight is sent twice, not the whole file.
    assert size <= server.served(TRAIN_ZIP) < size + size // 4
    assert not (tmp_path / (TRAIN_ZIP + ".part")).exists()


def test_stalled_body_times_out_and_resumes(server, dataset, tmp_path):
    size = len(dataset["zips"]["train"])
    server.script(TRAIN_ZIP, "stall")
    dest = fetch_archive(server.base + "/" + TRAIN_ZIP, tmp_path / TRAIN_ZIP, dataset["sha"]["train"], progress=False)
    assert dest.read_bytes() == dataset["zips"]["train"]
    assert server.ranges(TRAIN_ZIP)[1] is not None
    assert size <= server.served(TRAIN_ZIP) < size + size // 4


def test_server_ignoring_range_restarts_from_zero(server, dataset, tmp_path):
    size = len(dataset["zips"]["train"])
    server.script(TRAIN_ZIP, "drop", "ignore_range")
    dest = fetch_archive(server.base + "/" + TRAIN_ZIP, tmp_path / TRAIN_ZIP, dataset["sha"]["train"], progress=False)

    assert dest.read_bytes() == dataset["zips"]["train"]  # not half + whole
    assert server.requests(TRAIN_ZIP) == 2
    assert server.ranges(TRAIN_ZIP)[1] is not None  # it asked to resume...
    assert server.served(TRAIN_ZIP) >= size + size // 2 - 4096  # ...and got the whole file again


def test_leftover_part_from_earlier_run_is_resumed(server, dataset, tmp_path):
    payload = dataset["zips"]["train"]
    dest = tmp_path / TRAIN_ZIP
    Path(str(dest) + ".part").write_bytes(payload[:1000])
    fetch_archive(server.base + "/" + TRAIN_ZIP, dest, dataset["sha"]["train"], progress=False)
    assert dest.read_bytes() == payload
    assert server.ranges(TRAIN_ZIP) == ["bytes=1000-"]
    assert server.served(TRAIN_ZIP) == len(payload) - 1000


def test_complete_leftover_part_answered_416(server, dataset, tmp_path):
    payload = dataset["zips"]["train"]
    dest = tmp_path / TRAIN_ZIP
    Path(str(dest) + ".part").write_bytes(payload)
    fetch_archive(server.base + "/" + TRAIN_ZIP, dest, dataset["sha"]["train"], progress=False)
    assert dest.read_bytes() == payload
    assert server.served(TRAIN_ZIP) == 0


# --------------------------------------------------------------------------- extraction


def test_truncated_zip_is_refused(dataset, tmp_path):
    archive = tmp_path / "cut.zip"
    archive.write_bytes(dataset["zips"]["train"][:-300])
    out = tmp_path / "out"
    with pytest.raises(DownloadError) as err:
        extract_images(archive, "DIV2K_train_HR", out, ids=div2k.CONSECUTIVE)
    assert str(archive) in str(err.value)
    assert not out.exists()
    assert _tree(tmp_path) == {"cut.zip"}


def test_not_a_zip_is_refused(tmp_path):
    archive = tmp_path / "page.zip"
    archive.write_bytes(b"<html>maintenance</html>")
    with pytest.raises(DownloadError, match=re.escape(str(archive))):
        extract_images(archive, "DIV2K_train_HR", tmp_path / "out", ids=div2k.CONSECUTIVE)
    assert _tree(tmp_path) == {"page.zip"}


def test_corrupt_member_leaves_nothing_behind(dataset, tmp_path):
    payload = bytearray(dataset["zips"]["train"])
    png = dataset["pngs"]["DIV2K_train_HR/0003.png"]
    at = bytes(payload).index(png) + len(png) // 2
    payload[at] ^= 0xFF  # CRC no longer matches
    archive = tmp_path / "bad.zip"
    archive.write_bytes(bytes(payload))
    with pytest.raises(DownloadError, match="bad.zip"):
        extract_images(archive, "DIV2K_train_HR", tmp_path / "out", ids=div2k.CONSECUTIVE)
    assert _tree(tmp_path) == {"bad.zip"}


@pytest.mark.parametrize(
    "bad_name",
    ["../evil.png", "/abs.png", "DIV2K_train_HR/../../evil.png", "DIV2K_train_HR\\..\\evil.png", "symlink"],
)
def test_unsafe_entries_are_refused(dataset, tmp_path, bad_name):
    work = tmp_path / "work"
    work.mkdir()
    archive = tmp_path / "evil.zip"
    good = dataset["pngs"]["DIV2K_train_HR/0001.png"]
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("DIV2K_train_HR/0001.png", good)
        if bad_name == "symlink":
            zf.writestr(_symlink_entry("DIV2K_train_HR/0002.png", "../../evil.png"), "../../evil.png")
            shown = "DIV2K_train_HR/0002.png"
        else:
            zf.writestr(zipfile.ZipInfo(bad_name), good)
            shown = bad_name
    with zipfile.ZipFile(archive) as zf:  # the zip really holds the hostile name
        assert shown in zf.namelist()

    out = work / "out"
    with pytest.raises(DownloadError) as err:
        extract_images(archive, "DIV2K_train_HR", out, ids=div2k.CONSECUTIVE)
    assert repr(shown) in str(err.value)
    # Nothing written anywhere: not in out/, not beside it, not at the target.
    assert _tree(tmp_path) == {"work", "evil.zip"}
    assert not Path("/abs.png").exists()


def test_missing_folder_is_refused(dataset, tmp_path):
    archive = tmp_path / "other.zip"
    archive.write_bytes(_zip({"Other/0801.png": dataset["pngs"]["DIV2K_valid_HR/0801.png"]}))
    with pytest.raises(DownloadError) as err:
        extract_images(archive, "DIV2K_valid_HR", tmp_path / "out", ids=div2k.CONSECUTIVE)
    assert "holds no DIV2K_valid_HR/ folder" in str(err.value)
    assert str(archive) in str(err.value)
    assert _tree(tmp_path) == {"other.zip"}


def test_extract_skips_non_images_and_nested_entries(dataset, tmp_path):
    png = dataset["pngs"]["DIV2K_train_HR/0001.png"]
    archive = tmp_path / "mixed.zip"
    archive.write_bytes(
        _zip(
            {
                "DIV2K_train_HR/0001.png": png,
                "DIV2K_train_HR/notes.txt": b"x",
                "DIV2K_train_HR/sub/0002.png": png,
                "DIV2K_train_HR_extra/0003.png": png,
            }
        )
    )
    got = extract_images(archive, "DIV2K_train_HR", tmp_path / "out", ids=div2k.CONSECUTIVE)
    assert got == [tmp_path / "out" / "0001.png"]
    assert _tree(tmp_path / "out") == {"0001.png"}
    assert (tmp_path / "out" / "0001.png").read_bytes() == png


def test_download_div2k_requires_both_hashes(server, dataset, tmp_path):
    with pytest.raises(DownloadError, match="valid"):
        download_div2k(
            server.base, tmp_path / "out", tmp_path / "cache", sha256={"train": dataset["sha"]["train"]}, progress=False
        )
    assert sum(server.state.requests.values()) == 0  # refused before any download


# --------------------------------------------------------------------------- the download stage


def test_download_stage_fetches_div2k_from_params(server, dataset, tmp_path):
    """`python stages/download.py` with `download.source: div2k`, end to end over loopback HTTP."""
    import subprocess

    import yaml

    project = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["download"].update(source="div2k", div2k_url=server.base, div2k_sha256=dataset["sha"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(project / "dvc.yaml", tmp_path / "dvc.yaml")  # the stage reads which keys it may use from it
    env = {**os.environ, "SRCNN_CACHE_DIR": str(tmp_path / "cache")}
    cmd = stage_command("download")

    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "data/raw/train").iterdir()) == [
        "0001.png",
        "0002.png",
        "0003.png",
        "0004.png",
    ]
    assert sorted(p.name for p in (tmp_path / "data/raw/valid").iterdir()) == ["0801.png", "0802.png"]
    assert server.requests(TRAIN_ZIP) == 1

    # Rerunning the stage reuses the verified zips in the download cache.
    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert server.requests(TRAIN_ZIP) == 1

    # A wrong checksum fails with the expected value named and keeps the previous data/raw.
    params["download"]["div2k_sha256"]["valid"] = "0" * 64
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "cache" / "div2k" / div2k.ARCHIVES["valid"]).unlink()
    bad = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "0" * 64 in bad.stderr and "Traceback" not in bad.stderr
    assert len(list((tmp_path / "data/raw/valid").iterdir())) == 2
    assert sorted(os.listdir(tmp_path / "data")) == ["raw"]
