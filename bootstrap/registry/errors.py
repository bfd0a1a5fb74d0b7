"""Registry errors: one line with a hint, like every other BootstrapError."""

from collections.abc import Iterator

from bootstrap.errors import BootstrapError


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every one it was raised from or wraps (requests nests urllib3's and http.client's)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [e.__cause__, e.__context__, *(a for a in e.args if isinstance(a, BaseException))]


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
