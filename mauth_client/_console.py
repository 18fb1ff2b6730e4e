"""What the command line (``cli``) and the demo (``demo``) share: exit statuses, the
one-line error, and terminal colour. Below both, so neither imports the other for these."""

from __future__ import annotations

import os
from typing import TextIO

EXIT_OK, EXIT_INAUTHENTIC, EXIT_ERROR = 0, 1, 2


class CommandError(Exception):
    """A problem to report in one line, with exit status 2."""


class Style:
    """ANSI colour, only on a terminal and only without ``NO_COLOR``."""

    def __init__(self, stream: TextIO) -> None:
        self.enabled = stream.isatty() and not os.environ.get("NO_COLOR")

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)
