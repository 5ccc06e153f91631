"""The errors that are the user's to fix, not bugs.

A refusal of mmmask names what was wrong and how to fix it (a missing file,
a used work dir, a corrupt checkpoint, a misspelt type, a full disk...).
Such an error is raised as a :class:`UserError`; the command-line tools run
their ``main`` in :func:`mmmask.apis.tool_errors.run_tool`, which prints the
message of a :class:`UserError` as one paragraph, without a traceback (the
traceback stays behind ``--verbose`` and in the run's log file), and lets
every other exception (a bug) keep its full traceback.

Each member is also the built-in type it was before (a missing config is a
``FileNotFoundError``, a corrupt checkpoint a ``ValueError``...), so
``except FileNotFoundError`` and the existing callers still catch it.
Raise the class that says what kind of mistake it is; an error class of
its own (``CorruptCheckpointError``, ``WriteFailed``, ``CacheError``)
derives from :class:`UserError` and its built-in type.

No imports beyond the standard library: every layer (mask code, file I/O,
engine, tools) may raise these.
"""


class UserError(Exception):
    """Root of the errors whose message names the mistake and the fix.

    A mix-in: members also derive from a built-in exception type.
    """


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the command or config names does not exist
    (config, checkpoint, data root, image folder)."""


class FolderGivenError(UserError, IsADirectoryError):
    """A folder where a file is needed (a config folder)."""


class WorkDirInUseError(UserError, FileExistsError):
    """A fresh run into a work dir that holds an earlier run's files."""


class InvalidInputError(UserError, ValueError):
    """A file or value that cannot be used as given (a checkpoint of
    another kind or model, a corrupt image, an empty dataset)."""


class WrongKindError(UserError, TypeError):
    """A config or component of another kind than the tool needs (e.g. a
    reconstruction picture of a model that does not reconstruct)."""


class UnknownTypeError(UserError, KeyError):
    """A name no registry or model list knows (a typo in a config).

    ``str()`` is the message itself: ``KeyError`` would quote it.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


class NonFiniteError(UserError, FloatingPointError):
    """A diverged run: a NaN/inf loss, or weights about to be saved."""
