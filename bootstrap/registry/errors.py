"""Registry errors: one line with a hint, like every other BootstrapError."""

from bootstrap.errors import BootstrapError


class RegistryError(BootstrapError):
    """A registry refused, could not be reached, or answered something unexpected."""


class TransientError(RegistryError):
    """A dropped connection or a 5xx answer that outlasted the retries; worth running again."""

    def __init__(self, message: str, hint: str = "", reason: str = "") -> None:
        super().__init__(message, hint)
        self.reason = reason or message
        """What went wrong, without which request: `connection failed: connection reset by peer`."""


class MissingBlobs(RegistryError):
    """The registry refused a manifest for blobs it does not have (though it may have said it had them)."""
