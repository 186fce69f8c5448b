"""User-facing errors.

Anything the user can fix (a missing file, a bad config value, an empty corpus) is raised as a
:class:`TextVAEError`. The CLI prints its message on one line and exits with status 2, without a
traceback; programming errors keep their tracebacks.
"""

from __future__ import annotations

import re


class TextVAEError(Exception):
    """An error caused by the user's input, with a message that says what to do."""


class ConfigError(TextVAEError):
    """An unknown config key, a value of the wrong type, or an invalid combination."""


class DataError(TextVAEError):
    """A corpus that is missing, empty, unreadable or malformed."""


class ModelDirError(TextVAEError):
    """A path that is not a saved textvae model directory, or one that is damaged."""


class DiskFullError(TextVAEError):
    """The file system had no room for a checkpoint or a record; what was written before is intact."""


class ParameterError(TextVAEError, ValueError):
    """A bad argument to a library function. The message writes each parameter it names as ``{name}``: the
    library spells it as the Python parameter (or as ``spelling`` says, e.g. ``overwrite="overwrite=True"``),
    and a front end can respell it as its own option (:meth:`spelled`), so library messages never name CLI
    flags and CLI messages never name Python parameters."""

    def __init__(self, message: str, **spelling: str) -> None:
        self.message = message
        self.spelling = spelling
        super().__init__(self.spelled({}))

    @property
    def names(self) -> list[str]:
        """The parameters the message names, in order."""
        return re.findall(r"\{(\w+)\}", self.message)

    def spelled(self, names: dict[str, str]) -> str:
        """The message with each ``{name}`` replaced by ``names[name]`` (else the library's spelling)."""
        out = self.message
        for name in self.names:
            out = out.replace("{" + name + "}", names.get(name) or self.spelling.get(name, name))
        return out
