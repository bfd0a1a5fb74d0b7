"""What Debian copyright files say: the licences (machine-readable DEP-5 `License:` fields, as SPDX ids) and
the copyright notices (DEP-5 `Copyright:` fields, or the `Copyright ...` lines of a free-form file)."""

import re
from collections.abc import Iterable

from debian.deb822 import Deb822

from bootstrap.family.model import NO_NOTICE, Licence, Notice, license_ref
from bootstrap.host.tree import Tree

# Debian short names that differ from their SPDX identifiers.
DEBIAN_TO_SPDX = {
    "GPL-1": "GPL-1.0-only",
    "GPL-1+": "GPL-1.0-or-later",
    "GPL-2": "GPL-2.0-only",
    "GPL-2+": "GPL-2.0-or-later",
    "GPL-3": "GPL-3.0-only",
    "GPL-3+": "GPL-3.0-or-later",
    "LGPL-2": "LGPL-2.0-only",
    "LGPL-2+": "LGPL-2.0-or-later",
    "LGPL-2.1": "LGPL-2.1-only",
    "LGPL-2.1+": "LGPL-2.1-or-later",
    "LGPL-3": "LGPL-3.0-only",
    "LGPL-3+": "LGPL-3.0-or-later",
    "AGPL-3": "AGPL-3.0-only",
    "AGPL-3+": "AGPL-3.0-or-later",
    "GFDL-1.2": "GFDL-1.2-only",
    "GFDL-1.2+": "GFDL-1.2-or-later",
    "GFDL-1.3": "GFDL-1.3-only",
    "GFDL-1.3+": "GFDL-1.3-or-later",
    "Expat": "MIT",
    "BSD-2-clause": "BSD-2-Clause",
    "BSD-3-clause": "BSD-3-Clause",
    "BSD-4-clause": "BSD-4-Clause",
    "Artistic": "Artistic-1.0-Perl",
    "Artistic-2": "Artistic-2.0",
    "Apache-2": "Apache-2.0",
    "MPL-1.1": "MPL-1.1",
    "MPL-2": "MPL-2.0",
    "zlib": "Zlib",
    "ISC": "ISC",
    "PSF-2": "PSF-2.0",
    "CC0": "CC0-1.0",
    "curl": "curl",
    "OpenSSL": "OpenSSL",
    "X11": "X11",
    "MIT": "MIT",
    "Zlib": "Zlib",
    "Apache-2.0": "Apache-2.0",
    "BSL-1.0": "BSL-1.0",
    "Unicode-DFS-2016": "Unicode-DFS-2016",
    "BSD-2-Clause": "BSD-2-Clause",
    "BSD-3-Clause": "BSD-3-Clause",
    "CC0-1.0": "CC0-1.0",
    "MPL-2.0": "MPL-2.0",
    "GPL-2.0+": "GPL-2.0-or-later",
    "GPL-3.0+": "GPL-3.0-or-later",
    "LGPL-2.1-or-later": "LGPL-2.1-or-later",
    "GPL-2.0-or-later": "GPL-2.0-or-later",
    "GPL-3.0-or-later": "GPL-3.0-or-later",
    "Unlicense": "Unlicense",
    "0BSD": "0BSD",
    "WTFPL": "WTFPL",
    "Beerware": "Beerware",
    "FSFAP": "FSFAP",
    "FSFUL": "FSFUL",
    "FSFULLR": "FSFULLR",
    "BSD-1-clause": "BSD-1-Clause",
    "ICU": "ICU",
    "NTP": "NTP",
    "libtool": "LicenseRef-libtool",
}
_SKIP = {"or", "and", "with", "exception", "exceptions", "|", "&"}


def spdx_id(name: str) -> str:
    """The SPDX identifier of a Debian licence short name, or a LicenseRef- for one SPDX does not list."""
    mapped = DEBIAN_TO_SPDX.get(name)
    if mapped:
        return mapped
    gnu = re.fullmatch(r"((?:A|L)?GPL|GFDL)-(\d)(?:\.(\d))?(\+?)", name)
    if gnu:
        family, major, minor, later = gnu.groups()
        return f"{family}-{major}.{minor or 0}-{'or-later' if later else 'only'}"
    return license_ref(name)


MAX_TEXT = 256 << 10
"""A copyright file larger than this is not carried whole into an SBOM."""
_FREE_FORM_NOTICE = re.compile(r"(?:\bcopyright\b|\(c\)|©)\W*(?:\(c\)|©)?\W*(?:19|20)\d\d", re.IGNORECASE)


def _read(tree: Tree, package: str) -> str | None:
    data = tree.read(f"usr/share/doc/{package}/copyright")
    return None if data is None else data.decode("utf-8", "replace")


def _field_values(text: str, field: str) -> list[str]:
    """Every value of a field across the paragraphs of a DEP-5 file (python-debian reads the paragraphs),
    continuation lines joined by newlines, a "." line (an empty line) left out."""
    out: list[str] = []
    for paragraph in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
        value = paragraph.get(field)
        if value is None:
            continue
        lines = (line.strip() for line in value.split("\n"))
        joined = "\n".join(line for line in lines if line and line != ".")
        if joined:
            out.append(joined)
    return out


def notices_in(text: str) -> str:
    """The copyright notices of a copyright file, deduplicated, in order of appearance."""
    if text.startswith("Format:"):
        lines = [line for value in _field_values(text, "Copyright") for line in value.splitlines()]
    else:
        lines = [line.strip() for line in text.splitlines() if _FREE_FORM_NOTICE.search(line)]
    return "\n".join(dict.fromkeys(line.strip() for line in lines if line.strip()))


def make_notice(package: str, licenses: Iterable[str], copyright: str, text: str) -> Notice:
    """The neutral notice of a package's copyright file: its licence short names as SPDX ids (with a text
    for those SPDX does not list), its copyright notices, and the whole file."""
    licences = tuple(
        Licence(spdx_id(name), name, f"The {name} licence, as named in Debian copyright files.") for name in licenses
    )
    return Notice(licences, copyright, text, f"/usr/share/doc/{package}/copyright")


def notice(tree: Tree, package: str) -> Notice:
    text = _read(tree, package)
    if text is None:
        return NO_NOTICE
    return make_notice(package, _licenses_in(text), notices_in(text), text if len(text) <= MAX_TEXT else "")


def notices(tree: Tree, packages: Iterable[str]) -> dict[str, Notice]:
    return {name: notice(tree, name) for name in packages}


def declared(tree: Tree, package: str) -> list[str]:
    """Licence short names a package's copyright file declares (empty when it is not machine-readable)."""
    text = _read(tree, package)
    return [] if text is None else _licenses_in(text)


def _licenses_in(text: str) -> list[str]:
    """The licence short names of the `License:` synopses (first lines) of a DEP-5 file."""
    if not text.startswith("Format:"):
        return []
    names: set[str] = set()
    for paragraph in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
        synopsis = paragraph.get("License", "").split("\n", 1)[0].strip()
        for token in re.split(r"[\s,()]+", synopsis):
            if token and token.lower() not in _SKIP and not token.endswith("-exception") and len(token) < 64:
                names.add(token)
    return sorted(names)
