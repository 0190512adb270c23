"""The one exception of the importer: which step refused, and what to do."""

from __future__ import annotations


class ImportProblem(Exception):
    """What cannot be imported, at which step (load, convert, check, write), and what to do instead."""

    def __init__(self, message: str, step: str = "load") -> None:
        super().__init__(message)
        self.step = step

    def __str__(self) -> str:
        return f"{self.step}: {super().__str__()}"


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (several run to pages), at most 300 characters."""
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
