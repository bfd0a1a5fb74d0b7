"""Licences declared in Debian copyright files (machine-readable DEP-5 `License:` fields), as SPDX ids."""

import re

from bootstrap.tree import Tree

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


def license_ref(name: str) -> str:
    return "LicenseRef-" + re.sub(r"[^A-Za-z0-9.\-]", "-", name)


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


def declared(tree: Tree, package: str) -> list[str]:
    """Licence short names a package's copyright file declares (empty when it is not machine-readable)."""
    data = tree.read(f"usr/share/doc/{package}/copyright")
    if data is None:
        return []
    text = data.decode("utf-8", "replace")
    if not text.startswith("Format:"):
        return []
    names: set[str] = set()
    for line in text.splitlines():
        if not line.startswith("License:"):
            continue
        for token in re.split(r"[\s,()]+", line[8:].strip()):
            if token and token.lower() not in _SKIP and not token.endswith("-exception") and len(token) < 64:
                names.add(token)
    return sorted(names)
