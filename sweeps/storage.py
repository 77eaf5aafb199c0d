"""One experiment folder, wherever it lives: a local folder, an NFS mount, s3:// or gs://.

Everything the project writes beside Tune's own logs goes through `Storage`: the
record of what an experiment started with, the reference classifiers, the
runner's lock and the files each trial leaves after its last epoch. Cloud paths
go through pyarrow's filesystems, the same ones Tune uses, so whatever Tune can
write to, so can the project; what only a local disk has (a lock file, free
space, the filesystem type) is answered here too, and nowhere else asks
whether a path is a URI.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager, suppress

from sweeps.lock import experiment_lock, read_holder

# Filesystems every node of a cluster can mount at the same path.
SHARED_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "lustre", "glusterfs", "ceph", "fuse.ceph", "beegfs",
                      "gpfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs"}


class StorageError(Exception):
    """A file of the experiment that is there but could not be read as written (a failed
    read, JSON that does not parse): one line naming it. Never taken for a missing file:
    a record rebuilt from a failed read would lose what it held."""


def is_uri(path: str) -> bool:
    return "://" in path


def filesystem_type(path: str) -> str:
    """The type of the filesystem `path` lies on, from /proc/mounts (longest mount point)."""
    best, kind = "", ""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                _, point, fstype = line.split()[:3]
                if path.startswith(point.rstrip("/") + "/") or path == point or point == "/":
                    if len(point) > len(best):
                        best, kind = point, fstype
    except OSError:
        pass
    return kind


PART_PREFIX = ".noisesweep-"  # a file being written whole (Storage.write_bytes)


class Storage:
    """A folder on local or cloud storage; paths given to its methods are relative to it.

    Picklable (it holds only the path), so a trial on any node can write through it.
    """

    def __init__(self, path: str):
        self.path = path if is_uri(path) else os.path.abspath(os.path.expanduser(path))
        self._fs = None

    def __getstate__(self):
        return {"path": self.path, "_fs": None}

    def __repr__(self):
        return f"Storage({self.path!r})"

    @property
    def is_local(self) -> bool:
        return not is_uri(self.path)

    def child(self, *parts: str) -> Storage:
        return Storage(self.join(*parts))

    def join(self, *parts: str) -> str:
        """The full path (or URI) of `parts` under this folder."""
        return "/".join([self.path.rstrip("/"), *parts]) if parts else self.path

    @property
    def filesystem(self):
        """(pyarrow filesystem, this folder's path in it)."""
        if self._fs is None:
            import pyarrow.fs

            self._fs = pyarrow.fs.FileSystem.from_uri(self.path) if not self.is_local else (
                pyarrow.fs.LocalFileSystem(), self.path)
        return self._fs

    def _in_fs(self, *parts: str) -> str:
        return "/".join([self.filesystem[1].rstrip("/"), *parts])

    # -- files -------------------------------------------------------------------------

    def read_bytes(self, *parts: str) -> bytes | None:
        """A file's bytes, or None when it is missing; StorageError when it is there but
        could not be read."""
        fs, _ = self.filesystem
        try:
            with fs.open_input_stream(self._in_fs(*parts)) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            if not self.is_local and any(w in str(e).lower() for w in ("not found", "does not exist")):  # pyarrow's cloud filesystems say so
                return None
            raise StorageError(f"{self.join(*parts)}: could not be read ({e})") from None

    def write_bytes(self, blob: bytes, *parts: str) -> None:
        """Write a file whole: under a temporary name of its own first (created new, so a
        link planted there is not followed), flushed to disk, then renamed over the file, so
        a run killed mid-write leaves no half file that a later read would trust, and a
        failed write leaves no temporary one. The temporary name holds nothing of the file's
        own: readers that take files by a part of their name (TensorBoard reads every file
        whose name holds "tfevents") would read a worker's half write, left by a SIGKILL,
        as a second run beside the whole file."""
        if self.is_local:
            path = self.join(*parts)
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            fd, part = tempfile.mkstemp(dir=folder, prefix=PART_PREFIX, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(blob)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(part, path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(part)
                raise
            with suppress(OSError):  # the rename itself on disk (not every filesystem lets a folder sync)
                handle = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(handle)
                finally:
                    os.close(handle)
            return
        fs, _ = self.filesystem
        path = self._in_fs(*parts)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        part = f"{path.rsplit('/', 1)[0]}/{PART_PREFIX}{uuid.uuid4().hex}.part"
        try:
            with fs.open_output_stream(part) as f:
                f.write(blob)
            fs.move(part, path)
        except BaseException:
            with suppress(OSError):
                fs.delete_file(part)
            raise

    def read_json(self, *parts: str):
        """A JSON file's value, or None when it is missing; StorageError when it is there
        but unreadable or not JSON."""
        blob = self.read_bytes(*parts)
        try:
            return None if blob is None else json.loads(blob)
        except ValueError as e:
            raise StorageError(f"{self.join(*parts)}: not the JSON it was written as ({e})") from None

    def write_json(self, value, *parts: str) -> None:
        self.write_bytes(json.dumps(value, indent=1).encode(), *parts)

    def makedirs(self, *parts: str) -> None:
        fs, _ = self.filesystem
        fs.create_dir(self._in_fs(*parts), recursive=True)

    # -- what only a local folder has --------------------------------------------------

    def names(self) -> set[str]:
        """The names of the entries in this folder; none when it is missing (a cloud folder
        is a prefix: empty until something is written under it)."""
        if self.is_local:
            return set(os.listdir(self.path)) if os.path.isdir(self.path) else set()
        import pyarrow.fs

        fs, path = self.filesystem
        return {e.base_name for e in fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))}

    def is_empty_or_missing(self, ignoring: tuple = ()) -> bool:
        """Whether nothing is there yet but the entries named in `ignoring`."""
        return not self.names() - set(ignoring)

    def writable_problem(self) -> str | None:
        """Why this folder could not be created or written, or None; creates nothing."""
        if not self.is_local:
            return None
        existing = self.path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            return f"{existing} is a file, not a folder"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{existing} is not writable"
        return None

    def free_bytes(self) -> int | None:
        return shutil.disk_usage(self.path).free if self.is_local else None

    def reaches_other_hosts(self) -> bool:
        """Whether trials on other machines write to the same place: cloud storage or a
        network filesystem."""
        return not self.is_local or filesystem_type(self.path) in SHARED_FILESYSTEMS

    def lock_holder(self) -> dict | None:
        """Who holds the runner's lock on this experiment (cloud experiments have none)."""
        return read_holder(self.path) if self.is_local else None

    @contextmanager
    def locked(self, take_stale: bool):
        """Hold the experiment's lock (sweeps.lock) for the block; on cloud storage a
        cluster's runs share the bucket and one runner per name is the user's to keep.
        A folder the lock created and nothing filled is removed again."""
        if not self.is_local:
            yield
            return
        created = not os.path.exists(self.path)
        try:
            with experiment_lock(self.path, take_stale=take_stale):
                yield
        finally:
            if created and os.path.isdir(self.path) and not os.listdir(self.path):
                os.rmdir(self.path)
