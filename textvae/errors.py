"""User-facing errors.

Anything the user can fix (a missing file, a bad config value, an empty corpus) is raised as a
:class:`TextVAEError`. The CLI prints its message on one line and exits with status 2, without a
traceback; programming errors keep their tracebacks.
"""

from __future__ import annotations


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
