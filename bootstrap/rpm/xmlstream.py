"""A streaming XML reader for repository metadata (expat, one chunk at a time): element names without their
namespace, each element's text at its end (at most MAX_TEXT characters of it), and no entity declarations (a
document that declares one is refused before anything expands)."""

from collections.abc import Callable, Iterable
from xml.parsers import expat

from bootstrap.errors import ChecksumError

Start = Callable[[str, dict[str, str]], None]
End = Callable[[str, str], None]
MAX_TEXT = 1 << 20
"""The most text one element may hold: far more than any of repomd.xml, a metalink or comps.xml holds (a group's
longest description is a few KB), so that a small compressed file cannot make one element gigabytes in memory."""


class _Refused(Exception):
    pass


class _TooLong(Exception):
    pass


def _local(name: str) -> str:
    return name.rpartition(" ")[2]


def parse(chunks: Iterable[bytes], start: Start, end: End, what: str) -> None:
    """Feed `chunks` through expat, calling `start(name, attributes)` and `end(name, text)` for each element."""
    parser = expat.ParserCreate(namespace_separator=" ")
    text: list[str] = []
    held = 0

    def on_start(name: str, attrs: dict[str, str]) -> None:
        nonlocal held
        text.clear()
        held = 0
        start(_local(name), attrs)

    def on_end(name: str) -> None:
        nonlocal held
        end(_local(name), "".join(text))
        text.clear()
        held = 0

    def on_text(data: str) -> None:
        nonlocal held
        held += len(data)
        if held > MAX_TEXT:
            raise _TooLong
        text.append(data)

    def refuse(*_: object) -> None:
        raise _Refused

    parser.StartElementHandler = on_start
    parser.EndElementHandler = on_end
    parser.CharacterDataHandler = on_text
    parser.EntityDeclHandler = refuse
    parser.buffer_text = True
    try:
        for chunk in chunks:
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _Refused:
        raise ChecksumError(f"{what} declares XML entities", "repository metadata never does: it is hostile") from None
    except _TooLong:
        raise ChecksumError(
            f"{what}: an element holds more than {MAX_TEXT} characters of text", "repository metadata never does"
        ) from None
    except (expat.ExpatError, LookupError, ValueError) as exc:  # LookupError: an encoding Python does not know
        raise ChecksumError(f"{what} is not well-formed XML ({exc})", "the repository's metadata is corrupt") from None
