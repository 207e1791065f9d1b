"""Errors a user can act on. The CLI prints their message (no traceback) and exits with status 2."""


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
