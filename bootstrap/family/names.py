"""The distributions this tool builds, by the name a recipe's `distribution` gives; which family builds each
one is the family registry's business (`bootstrap.build.families`)."""

import enum


class Distro(enum.StrEnum):
    DEBIAN = "debian"
    UBUNTU = "ubuntu"
    CENTOS_STREAM = "centos-stream"
    ALMALINUX = "almalinux"
    ROCKYLINUX = "rockylinux"
    FEDORA = "fedora"
