"""A streaming XML reader for repository metadata (expat, one chunk at a time): element names without their
namespace, each element's text at its end, and no entity declarations (a document that declares one is
refused before anything expands)."""

from collections.abc import Callable, Iterable
from xml.parsers import expat

from bootstrap.errors import ChecksumError

Start = Callable[[str, dict[str, str]], None]
End = Callable[[str, str], None]


class _Refused(Exception):
    pass


def _local(name: str) -> str:
    return name.rpartition(" ")[2]


def parse(chunks: Iterable[bytes], start: Start, end: End, what: str) -> None:
    """Feed `chunks` through expat, calling `start(name, attributes)` and `end(name, text)` for each element."""
    parser = expat.ParserCreate(namespace_separator=" ")
    text: list[str] = []

    def on_start(name: str, attrs: dict[str, str]) -> None:
        text.clear()
        start(_local(name), attrs)

    def on_end(name: str) -> None:
        end(_local(name), "".join(text))
        text.clear()

    def refuse(*_: object) -> None:
        raise _Refused

    parser.StartElementHandler = on_start
    parser.EndElementHandler = on_end
    parser.CharacterDataHandler = text.append
    parser.EntityDeclHandler = refuse
    parser.buffer_text = True
    try:
        for chunk in chunks:
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _Refused:
        raise ChecksumError(f"{what} declares XML entities", "repository metadata never does: it is hostile") from None
    except (expat.ExpatError, LookupError, ValueError) as exc:  # LookupError: an encoding Python does not know
        raise ChecksumError(f"{what} is not well-formed XML ({exc})", "the repository's metadata is corrupt") from None
