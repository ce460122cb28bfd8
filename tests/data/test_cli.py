"""``fometa data``: local sources, downloads (through file:// URLs, no network) with checksum
checks, ``info``; and the progress bar."""
from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest

from fometa.cli import main
from fometa.data import DataError, inspect_packed, load_miniimagenet
from fometa.data._io import KNOWN_SHA256, Progress, download, sha256_file, verify_sha256


def test_omniglot_from_local_paths(omniglot_zips, omniglot_packed, tmp_path, capsys):
    out = tmp_path / "datasets" / "omniglot.h5"
    assert main(["data", "omniglot", "--quiet", "--source", *map(str, omniglot_zips), "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
    assert inspect_packed(out).attrs == inspect_packed(omniglot_packed).attrs
    # a folder holding the zips works as well, and the output is not overwritten without --force
    assert main(["data", "omniglot", "--quiet", "--source", str(omniglot_zips[0].parent), "--out", str(out)]) == 2
    assert "output file exists" in capsys.readouterr().err
    assert main(["data", "omniglot", "--quiet", "--force", "--source", str(omniglot_zips[0].parent),
                 "--out", str(out)]) == 0


def test_miniimagenet_from_a_local_tar(mini_folder, tmp_path, gen, capsys):
    tar = gen.tar_folder(mini_folder, tmp_path / "miniimagenet.tar.gz")
    out = tmp_path / "mini.h5"
    assert main(["data", "miniimagenet", "--source", str(tar), "--out", str(out), "--images-per-class", "3"]) == 0
    err = capsys.readouterr().err
    assert "pack miniimagenet" in err and f"wrote {out}" in err
    splits = load_miniimagenet(out)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    for s in splits.values():
        s.close()


def test_omniglot_download_from_urls_checks_known_checksums(omniglot_zips, tmp_path, capsys):
    # the generated zips carry the official names, so the official checksums apply and fail
    downloads = tmp_path / "downloads"
    url = omniglot_zips[0].parent.as_uri() + "/"
    rc = main(["data", "omniglot", "--quiet", "--source", url, "--download-dir", str(downloads),
               "--out", str(tmp_path / "o.h5")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith(f"fometa: error: {url}images_background.zip: checksum mismatch: SHA-256 is ")
    assert KNOWN_SHA256["images_background.zip"] in err
    assert "--source images_background.zip images_evaluation.zip" in err and err.count("\n") == 0
    assert not (tmp_path / "o.h5").exists() and not downloads.exists()


def test_download_with_given_checksum_then_pack(mini_folder, tmp_path, gen, capsys):
    tar = gen.tar_folder(mini_folder, tmp_path / "miniimagenet.tar")
    digest = hashlib.sha256(tar.read_bytes()).hexdigest()
    downloads = tmp_path / "dl"
    out = tmp_path / "o.h5"
    assert main(["data", "miniimagenet", "--source", tar.as_uri(), "--sha256", digest, "--download-dir",
                 str(downloads), "--out", str(out), "--images-per-class", "3"]) == 0
    err = capsys.readouterr().err
    assert "download miniimagenet.tar" in err
    assert sha256_file(downloads / "miniimagenet.tar") == digest
    assert json.loads(json.dumps(inspect_packed(out).attrs["sources"]))[0]["sha256"] == digest


def test_download_function(tmp_path, capsys):
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(np.arange(3000, dtype=np.uint16).tobytes())
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "dl"
    got = download(src.as_uri(), dest, sha256=digest, progress=False)
    assert got == dest / "payload.bin" and got.read_bytes() == src.read_bytes()
    src.write_bytes(b"changed")
    assert download(src.as_uri(), dest, sha256=digest, progress=False).read_bytes() != b"changed"  # reused
    with pytest.raises(DataError, match="checksum mismatch"):
        download(src.as_uri(), tmp_path / "dl2", sha256="0" * 64, progress=False)
    assert list((tmp_path / "dl2").iterdir()) == []
    with pytest.raises(DataError, match="download failed"):
        download((tmp_path / "absent.bin").as_uri(), tmp_path / "dl3", progress=False)
    # without a known checksum the computed one is printed
    download(src.as_uri(), tmp_path / "dl4", progress=True)
    assert hashlib.sha256(b"changed").hexdigest() in capsys.readouterr().err


def test_verify_sha256_on_local_files(tmp_path):
    f = tmp_path / "a.zip"
    f.write_bytes(b"abc")
    good = hashlib.sha256(b"abc").hexdigest()
    assert verify_sha256(f, good.upper()) == good
    with pytest.raises(DataError, match=f"{f}: checksum mismatch: SHA-256 is {good}, expected"):
        verify_sha256(f, "f" * 64)


def test_real_archives_match_the_known_official_checksums(gen):
    for name, digest in KNOWN_SHA256.items():
        path = gen.REAL_OMNIGLOT / name
        if not path.is_file():
            pytest.skip(f"real Omniglot archives not found in {gen.REAL_OMNIGLOT}")
        assert verify_sha256(path, digest) == digest


def test_info_prints_json(omniglot_packed, capsys):
    assert main(["data", "info", "--verify", str(omniglot_packed)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dataset"] == "omniglot" and info["schema_version"] == 1 and info["verified"] is True
    assert info["packing_options"]["resize"] == "reference" and info["num_characters"] == 5


def test_progress_bar_text():
    stream = io.StringIO()
    bar = Progress(20, "pack", stream=stream)
    for _ in range(20):
        bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert 2 <= len(lines) <= 3  # not a terminal: the first update, the last, and close()
    assert lines[-1].startswith("pack 20/20 [####################] 100%")
    quiet = io.StringIO()
    Progress(5, "x", enabled=False, stream=quiet).update(5)
    assert quiet.getvalue() == ""


def test_verify_packed_tool_on_fixtures(omniglot_zips, omniglot_packed, mini_folder, mini_packed, gen, tmp_path):
    import subprocess
    import sys

    tool = str(gen.REPO / "tools" / "verify_packed.py")
    r = subprocess.run([sys.executable, tool, str(omniglot_packed), *map(str, omniglot_zips)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["drawings"] == 100
    tar = gen.tar_folder(mini_folder, tmp_path / "m.tar.gz")
    for source in (mini_folder, tar):
        r = subprocess.run([sys.executable, tool, str(mini_packed), str(source)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["images"] == 12


# -- interrupted and failed packs: nothing left behind ------------------------------------------
def test_offline_omniglot_names_the_local_files_to_give_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import socket
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.chdir(tmp_path)
    assert main(["data", "omniglot", "--out", "datasets/omniglot.h5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("fometa: error: https://") and "Name or service not known" in err
    assert "--source images_background.zip images_evaluation.zip" in err
    assert list(tmp_path.iterdir()) == [], "the failed download left files or folders behind"


def _slow_pack(args):
    """``fometa ARGS`` in a process whose packing waits a minute once its temporary file exists."""
    import subprocess
    import sys

    code = ("import sys, time\n"
            "import fometa.data.pack_omniglot as pack\n"
            "read = pack._read_images\n"
            "def slow(*a):\n"
            "    print('packing', flush=True)\n"
            "    time.sleep(60)\n"
            "    return read(*a)\n"
            "pack._read_images = slow\n"
            "from fometa.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "packing\n", proc.communicate()
    return proc


def test_sigterm_cleans_up_as_ctrl_c_does(omniglot_zips, tmp_path):
    import signal

    out = tmp_path / "omni.h5"
    proc = _slow_pack(["data", "omniglot", "--quiet", "--source", *omniglot_zips, "--out", out])
    assert len(list(tmp_path.glob("omni.h5.tmp*"))) == 1
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err == "fometa: terminated\n", err
    assert list(tmp_path.iterdir()) == []


def test_a_pack_removes_what_a_killed_pack_left(omniglot_zips, tmp_path, capsys):
    out = tmp_path / "omni.h5"
    proc = _slow_pack(["data", "omniglot", "--quiet", "--source", *omniglot_zips, "--out", out])
    proc.kill()  # SIGKILL: no clean-up can run
    proc.communicate(timeout=60)
    (left,) = tmp_path.glob("omni.h5.tmp*")
    assert main(["data", "omniglot", "--quiet", "--source", *map(str, omniglot_zips), "--out", str(out)]) == 0, \
        capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["omni.h5"], f"{left.name} is still there"
    assert inspect_packed(out).kind == "omniglot"
