"""The repository files of the image (/etc/yum.repos.d/): the official image's repositories, ids and enabled
flags, with `baseurl` under the user's mirror instead of the distribution's mirror list, so that dnf and
microdnf in the image install from where the image was built; or, where the distribution's files name a
metalink and the user named its service, that metalink, as the official files have it."""

from bootstrap.rpm.distros import Release, RepoDef, RpmDistro

REPOS_DIR = "/etc/yum.repos.d"


def _section(distro: RpmDistro, release: Release, mirror: str, r: RepoDef, metalink: str) -> str:
    source = f"metalink={metalink}{r.metalink}" if metalink and r.metalink else f"baseurl={mirror}/{r.path}/"
    return "\n".join(
        [
            f"[{r.id}]",
            f"name={r.name}",
            source,
            f"enabled={int(r.enabled)}",
            "gpgcheck=1",
            f"repo_gpgcheck={int(distro.metadata_signed)}",
            f"gpgkey=file://{release.gpgkey}",
            "",
        ]
    )


def repo_files(distro: RpmDistro, release: str, mirror: str, metalink: str = "") -> dict[str, bytes]:
    """Path in the tree -> content, one file per file of the official image, its sections in the release's order
    (with `metalink`, the user's metalink service, each repository that has one names it as the official file
    does, instead of a `baseurl` under the mirror)."""
    rel = distro.releases[release]
    files: dict[str, list[str]] = {}
    for r in rel.repos:
        files.setdefault(r.file, []).append(_section(distro, rel, mirror, r, metalink))
    return {f"{REPOS_DIR}/{name}": "\n".join(sections).encode() for name, sections in files.items()}
