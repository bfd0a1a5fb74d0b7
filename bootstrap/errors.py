"""One exception hierarchy for every error a user can act on: a message and a hint.

Exit codes: 1 for these, 2 for usage errors, 130 when interrupted, EX_SOFTWARE for an unexpected exception
(a bug: the CLI says so in one line and shows the traceback with --debug).
"""

import errno

EX_SOFTWARE = 70
"""sysexits.h's internal software error: what the CLI exits with when something unexpected escapes."""


class BootstrapError(Exception):
    """An error caused by input or environment, shown to the user as `error:` and `hint:` lines."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class RecipeError(BootstrapError):
    """A recipe is unknown or malformed."""


class MirrorError(BootstrapError):
    """No mirror was given or found, or a mirror cannot be reached."""


class NetworkError(BootstrapError):
    """A download failed after every retry."""


class SignatureError(BootstrapError):
    """A signature is missing, bad, or made by a key outside the keyring."""


class ChecksumError(BootstrapError):
    """A file does not match the checksum its signed index gives."""


class ResolveError(BootstrapError):
    """The requested package set cannot be satisfied."""


class PrivilegeError(BootstrapError):
    """The build needs privileges this process does not have."""


class UnpackError(BootstrapError):
    """A package archive is malformed or tries to write outside the root."""


class ConfigureError(BootstrapError):
    """A maintainer script or dpkg failed inside the root."""


_OS_HINTS = {
    errno.ENOENT: "check that the path and its parent directories exist",
    errno.ENOTDIR: "check that the path and its parent directories exist",
    errno.EISDIR: "give a file name, not a directory",
    errno.EACCES: "check the permissions of that path (or choose another one)",
    errno.EPERM: "check the permissions of that path (or choose another one)",
    errno.ENOSPC: "free some disk space there, or choose another directory (-o, --cache-dir)",
    errno.EDQUOT: "free some disk space there, or choose another directory (-o, --cache-dir)",
    errno.EROFS: "that file system is read-only: choose another directory",
}


def os_error(exc: OSError, path: object = None) -> BootstrapError:
    """An OSError (permission denied, no such directory, disk full) as a one-line error naming the path:
    `path` when given (the file the user named, not a temporary one beside it), else the error's own."""
    where = path if path is not None else exc.filename
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    if where is None:
        return BootstrapError(reason, _OS_HINTS.get(exc.errno or 0, "check the files and directories involved"))
    if path is None and exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}"
    return BootstrapError(f"{where}: {reason}", _OS_HINTS.get(exc.errno or 0, "check that path"))
