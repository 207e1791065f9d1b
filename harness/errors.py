"""Errors a user can act on. The CLI prints their message (no traceback) and exits with status 2."""

import errno
from pathlib import Path
from typing import NoReturn

# Write failures that making room fixes, with the words a user reads for each.
_FULL_STORAGE = {
    errno.ENOSPC: "no space is left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file would pass a file-size limit (ulimit -f, or the file system's)",
}


class HarnessError(Exception):
    """Base class for user-facing errors."""


class DataError(HarnessError):
    """Bad input data. The message names the file, the record (index) and the field."""

    def __init__(self, file: object, message: str, record: int | None = None, field: str | None = None) -> None:
        where = str(file)
        if record is not None:
            where += f", record {record}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")
        self.file = str(file)
        self.record = record
        self.field = field


class ConfigError(HarnessError):
    """A run configuration that cannot be carried out (unknown key, bad value, a resume that disagrees)."""


class StorageError(HarnessError):
    """A write that failed for want of room (a full disk, a quota, a file-size limit); nothing stored is lost."""


def raise_storage_error(path: Path | str, error: OSError) -> NoReturn:
    """Re-raise the failed write ``error`` of ``path`` as the ``StorageError`` naming it when making room fixes it
    (a full disk, a quota, a file-size limit), else as it is."""
    named = _storage_error(path, error)
    if named is None:
        raise error
    raise named from error


def _storage_error(path: Path | str, error: OSError) -> StorageError | None:
    reason = _FULL_STORAGE.get(error.errno or 0)
    if reason is None:
        return None
    return StorageError(f"cannot write {path}: {reason} ({errno.errorcode[error.errno or 0]}). Everything stored "
                        "before is complete and kept: make room (or raise the limit) and run the same command again "
                        "(a run or a training resumes where it stopped)")
