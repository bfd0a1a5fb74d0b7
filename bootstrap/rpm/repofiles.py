"""The repository files of the image (/etc/yum.repos.d/): the official image's repositories, ids and enabled
flags, with `baseurl` under the user's mirror instead of the distribution's mirror list, so that dnf and
microdnf in the image install from where the image was built."""

from bootstrap.rpm.distros import Release, RpmDistro

REPOS_DIR = "/etc/yum.repos.d"


def _section(distro: RpmDistro, release: Release, mirror: str, rid: str, name: str, path: str, on: bool) -> str:
    return "\n".join(
        [
            f"[{rid}]",
            f"name={name}",
            f"baseurl={mirror}/{path}/",
            f"enabled={int(on)}",
            "gpgcheck=1",
            f"repo_gpgcheck={int(distro.metadata_signed)}",
            f"gpgkey=file://{release.gpgkey}",
            "",
        ]
    )


def repo_files(distro: RpmDistro, release: str, mirror: str) -> dict[str, bytes]:
    """Path in the tree -> content, one file per file of the official image, its sections in the release's order."""
    rel = distro.releases[release]
    files: dict[str, list[str]] = {}
    for r in rel.repos:
        files.setdefault(r.file, []).append(_section(distro, rel, mirror, r.id, r.name, r.path, r.enabled))
    return {f"{REPOS_DIR}/{name}": "\n".join(sections).encode() for name, sections in files.items()}
