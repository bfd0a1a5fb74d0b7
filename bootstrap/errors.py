"""One exception hierarchy for every error a user can act on: a message and a hint."""


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
