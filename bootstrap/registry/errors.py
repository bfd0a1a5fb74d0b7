"""Registry errors: one line with a hint, like every other BootstrapError."""

from bootstrap.errors import BootstrapError
from bootstrap.host.retry import Transient, causes

__all__ = ["MissingBlobs", "RegistryError", "TransientError", "causes"]


class RegistryError(BootstrapError):
    """A registry refused, could not be reached, or answered something unexpected."""


class TransientError(RegistryError, Transient):
    """A dropped connection or a 5xx answer that outlasted a request's retries; worth running again (a blob
    upload does, in a new session: `retry.classify` calls it transient)."""

    def __init__(self, message: str, hint: str = "", reason: str = "") -> None:
        RegistryError.__init__(self, message, hint)
        self.reason = self.why = reason or message
        """What went wrong, without which request: `connection reset by peer`."""
        self.wait, self.mismatch = 0.0, False


class MissingBlobs(RegistryError):
    """The registry refused a manifest for blobs it does not have (though it may have said it had them)."""
