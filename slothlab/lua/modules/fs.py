"""The ``fs`` Lua module: files and folders (capability ``fs``).

``read, write, append, exists, mkdir, rm, rmr, copy, ls, size, tmpname, basename, dirname``.
When the runtime's ``capabilities.fs_root`` is set, every path is resolved (symlinks followed)
and must stay below that folder; relative paths start there. A failing call returns
``nil, "message"``.

>>> from pathlib import Path
>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> files = Files(root)
>>> files.write("notes/a.txt", "hello")
(None, 'fs.write: no such folder: notes')
>>> files.mkdir("notes"), files.write("notes/a.txt", "hello"), files.read("notes/a.txt")
(True, True, b'hello')
>>> files.read("../outside.txt")
(None, 'fs.read: ../outside.txt is outside the allowed folder')
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = ["Files", "FsModule"]

Failure = tuple[None, str]


class _Refused(Exception):
    """A path that may not be used; the message says why."""


class Files:
    """File operations confined below ``root`` (when given); each returns a value or a Failure.

    Args:
        root: the folder every path must stay below, or ``None`` for no confinement.
        cwd: where relative paths start when there is no root (default: the current folder).
    """

    def __init__(self, root: Path | None = None, cwd: Path | None = None) -> None:
        self.root = root.resolve() if root is not None else None
        self.cwd = cwd

    def path(self, value: Any) -> Path:
        """The resolved path for ``value``; raises _Refused when it may not be used."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        if not isinstance(value, str) or not value:
            raise _Refused("the path must be a non-empty string")
        if "\0" in value:
            raise _Refused("the path contains a NUL byte")
        base = self.root or self.cwd or Path.cwd()
        resolved = (base / value).resolve()
        if self.root is not None and not resolved.is_relative_to(self.root):
            raise _Refused(f"{value} is outside the allowed folder")
        return resolved

    def _do(self, op: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except _Refused as exc:
            return None, f"fs.{op}: {exc}"
        except FileNotFoundError as exc:
            return None, f"fs.{op}: no such file or folder: {exc.filename or ''}".rstrip()
        except IsADirectoryError:
            return None, f"fs.{op}: is a folder (use fs.rmr for folders)"
        except OSError as exc:
            return None, f"fs.{op}: {exc.strerror or exc}"

    def read(self, path: Any) -> Any:
        """The whole file as a (byte) string."""
        return self._do("read", lambda: self.path(path).read_bytes())

    def write(self, path: Any, content: Any = "") -> Any:
        """Replace the file's content; the folder must exist."""
        return self._write("write", path, content, "wb")

    def append(self, path: Any, content: Any = "") -> Any:
        """Add to the end of the file (created when missing)."""
        return self._write("append", path, content, "ab")

    def _write(self, op: str, path: Any, content: Any, mode: str) -> Any:
        data = _as_bytes(content)
        if data is None:
            return None, f"fs.{op}: content must be a string or a number"

        def go() -> bool:
            target = self.path(path)
            if not target.parent.is_dir():
                raise _Refused(f"no such folder: {posixpath.dirname(str(path)) or '.'}")
            with target.open(mode) as fh:
                fh.write(data)
            return True

        return self._do(op, go)

    def exists(self, path: Any) -> Any:
        """True when the file or folder exists."""
        return self._do("exists", lambda: self.path(path).exists())

    def mkdir(self, path: Any) -> Any:
        """Create the folder and its parents (no error when it exists)."""

        def go() -> bool:
            self.path(path).mkdir(parents=True, exist_ok=True)
            return True

        return self._do("mkdir", go)

    def rm(self, path: Any) -> Any:
        """Remove a file (or an empty folder)."""

        def go() -> bool:
            target = self._not_root(path)
            target.rmdir() if target.is_dir() and not target.is_symlink() else target.unlink()
            return True

        return self._do("rm", go)

    def rmr(self, path: Any) -> Any:
        """Remove a folder and everything in it (or a file)."""

        def go() -> bool:
            target = self._not_root(path)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
            return True

        return self._do("rmr", go)

    def _not_root(self, path: Any) -> Path:
        target = self.path(path)
        if target == Path("/") or target == self.root:
            raise _Refused(f"refusing to remove {target}")
        return target

    def copy(self, src: Any, dst: Any) -> Any:
        """Copy a file (or a folder, recursively) to ``dst``."""

        def go() -> bool:
            source, target = self.path(src), self.path(dst)
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True)
            else:
                shutil.copyfile(source, target)
            return True

        return self._do("copy", go)

    def ls(self, path: Any = ".") -> Any:
        """Sorted names of the entries of a folder."""
        return self._do("ls", lambda: sorted(p.name for p in self.path(path).iterdir()))

    def size(self, path: Any) -> Any:
        """Size of a file in bytes."""
        return self._do("size", lambda: self.path(path).stat().st_size)

    def tmpname(self) -> Any:
        """The path of a new empty temporary file (below the root when confined)."""

        def go() -> str:
            fd, name = tempfile.mkstemp(prefix="slothlab-", dir=self.root)
            os.close(fd)
            return name

        return self._do("tmpname", go)


def _as_bytes(content: Any) -> bytes | None:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, int | float) and not isinstance(content, bool):
        return str(content).encode()
    return None


def _basename(path: Any) -> Any:
    if not isinstance(path, str):
        return None, "fs.basename: the path must be a string"
    return posixpath.basename(path.rstrip("/")) or path[:1]


def _dirname(path: Any) -> Any:
    if not isinstance(path, str):
        return None, "fs.dirname: the path must be a string"
    return posixpath.dirname(path.rstrip("/")) or ("/" if path.startswith("/") else ".")


class FsModule(LuaModule):
    """The ``fs`` table, confined below ``capabilities.fs_root`` when set."""

    name = "fs"
    capability = "fs"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """The functions listed in the module docstring."""
        workdir = runtime.context.get("workdir")
        files = Files(runtime.capabilities.fs_root, Path(workdir) if workdir else None)
        names = ["read", "write", "append", "exists", "mkdir", "rm", "rmr", "copy", "ls", "size"]
        table: dict[str, Callable[..., Any]] = {n: getattr(files, n) for n in names}
        table.update(tmpname=files.tmpname, basename=_basename, dirname=_dirname)
        return table
