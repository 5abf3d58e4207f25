"""The fs module: every operation, confinement below fs_root, and nil-and-message failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slothlab.lua import Capabilities, Runtime


def _confined(root: Path) -> Runtime:
    return Runtime(capabilities=Capabilities(fs=True, fs_root=root))


def test_the_operations(tmp_path: Path) -> None:
    rt = _confined(tmp_path)
    out = rt.execute(
        """
        assert(fs.mkdir("a/b"))
        assert(fs.write("a/b/f.txt", "hello"))
        assert(fs.append("a/b/f.txt", " world"))
        assert(fs.copy("a/b/f.txt", "a/g.txt"))
        assert(fs.copy("a/b", "a/c"))
        local r = {
            read = fs.read("a/g.txt"), size = fs.size("a/g.txt"), ls = fs.ls("a"),
            exists = fs.exists("a/c/f.txt"), missing = fs.exists("nope"),
            base = fs.basename("/x/y/z.txt"), dir = fs.dirname("/x/y/z.txt"),
            rel_dir = fs.dirname("z.txt"),
        }
        assert(fs.rm("a/g.txt"))
        assert(fs.rmr("a/c"))
        r.after = fs.ls("a")
        local tmp = fs.tmpname()
        r.tmp_exists = fs.exists(tmp)
        return r
        """
    )[0]
    assert out == {
        "read": "hello world",
        "size": 11,
        "ls": ["b", "c", "g.txt"],
        "exists": True,
        "missing": False,
        "base": "z.txt",
        "dir": "/x/y",
        "rel_dir": ".",
        "after": ["b"],
        "tmp_exists": True,
    }


def test_binary_content_round_trips(tmp_path: Path) -> None:
    rt = _confined(tmp_path)
    rt.execute('fs.write("bin", "\\0\\255\\1")')
    assert (tmp_path / "bin").read_bytes() == b"\x00\xff\x01"
    assert rt.execute('return #fs.read("bin")') == [3]


@pytest.mark.parametrize(
    "path", ["../escape.txt", "/etc/passwd", "a/../../escape.txt", "link/inside.txt"]
)
def test_paths_outside_the_root_are_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)  # a symlink that points out of the root
    (tmp_path / "inside.txt").write_text("secret")
    rt = _confined(root)
    for call in (f'fs.read("{path}")', f'fs.write("{path}", "x")', f'fs.exists("{path}")'):
        value, message = rt.execute(f"return {call}")
        assert value is None and "outside the allowed folder" in message, call
    assert not (tmp_path / "escape.txt").exists()
    assert (tmp_path / "inside.txt").read_text() == "secret"


def test_nul_bytes_and_removing_the_root_are_refused(tmp_path: Path) -> None:
    rt = _confined(tmp_path)
    assert rt.execute('return fs.read("a\\0b")') == [None, "fs.read: the path contains a NUL byte"]
    value, message = rt.execute('return fs.rmr(".")')
    assert value is None and "refusing to remove" in message and tmp_path.exists()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('fs.read("missing")', "fs.read: no such file or folder"),
        ('fs.write("no/dir/f", "x")', "fs.write: no such folder: no/dir"),
        ('fs.write("f", {})', "content must be a string"),
        ("fs.read(42)", "the path must be a non-empty string"),
        ('fs.rm("missing")', "fs.rm: no such file or folder"),
        ('fs.ls("missing")', "fs.ls: no such file or folder"),
    ],
)
def test_failures_return_nil_and_a_message(tmp_path: Path, call: str, message: str) -> None:
    value, text = _confined(tmp_path).execute(f"return {call}")
    assert value is None and message in text


def test_fs_is_absent_without_the_capability() -> None:
    assert Runtime(capabilities=Capabilities()).execute("return fs == nil") == [True]


def test_unconfined_relative_paths_start_at_the_workdir(tmp_path: Path) -> None:
    rt: Any = Runtime(capabilities=Capabilities(fs=True), context={"workdir": str(tmp_path)})
    rt.execute('fs.write("here.txt", "x")')
    assert (tmp_path / "here.txt").read_text() == "x"
