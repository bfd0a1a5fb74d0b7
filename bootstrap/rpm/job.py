"""The RPM family's steps for one platform's tree: unpack (and the rpm database), scriptlets in the sandbox,
finish (the files the distribution's image writes and removes), the scriptless database, licence notices. Rows
of the step table (`bootstrap.build.steps`) call them through the `Job` protocol."""

import contextlib
import fnmatch
import json
import os
import re
import stat
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.errors import BootstrapError
from bootstrap.family.interface import Runnable, Target
from bootstrap.family.model import Licence, Notice
from bootstrap.host import tmpfiles
from bootstrap.host.tree import Tree, TreeError
from bootstrap.log import log
from bootstrap.rpm import keptdb, rpmdb, scriptlets, tags
from bootstrap.rpm.files import FileEntry, file_table, skipped
from bootstrap.rpm.header import Header, Layout, read_layout
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.order import install_order
from bootstrap.rpm.selection import RpmSelection
from bootstrap.rpm.unpack import Unpacked, reown, unpack_all

_SPDX_OPERATORS = re.compile(r"\s+(?:AND|OR|WITH)\s+|[()]")
_OLD_OPERATORS = re.compile(r"\s+(?:and|or|AND|OR)\s+|[(),]")
_SPDX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\+?")


def licences(expression: str) -> tuple[Licence, ...]:
    """The licences an rpm License tag names: each identifier of an SPDX expression (current Fedora and EL 10),
    or each name of the older free-form style (`GPLv2+ and Public Domain`) as a LicenseRef-."""
    spdx = not re.search(r"\s(?:and|or)\s", expression)
    out: dict[str, Licence] = {}
    for word in (_SPDX_OPERATORS if spdx else _OLD_OPERATORS).split(expression):
        word = word.strip()
        if not word or word in out:
            continue
        if spdx and _SPDX_ID.fullmatch(word):
            out[word] = Licence(word, word)
        else:
            ref = "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", word.replace("+", "-plus")).strip("-")
            out[word] = Licence(ref, word, f"{word}, as an rpm License tag names it.")
    return tuple(out.values())


@dataclass
class RpmJob:
    """One platform's tree as the RPM steps build it."""

    selection: RpmSelection
    files: Mapping[str, Path]
    """Package name -> its verified .rpm file."""
    target: Target
    options: JobOptions = field(default_factory=JobOptions)
    kept: Path | None = None
    """The cache's area of decompressed payloads (`bootstrap.rpm.expanded`), unless the build takes nothing from
    derived cache areas."""
    kept_db: Path | None = None
    """The cache's area of package databases (`bootstrap.rpm.keptdb`), on the same condition."""
    read_layouts: Mapping[str, Layout] | None = None
    """The files' headers as the checks before the job read them (else read here)."""
    unpacked: list[Unpacked] = field(default_factory=list)

    @property
    def tree(self) -> Tree:
        return Tree(self.target.root, self.target.overrides)

    def _layouts(self) -> dict[str, Layout]:
        """The selection's signed headers and where their parts are, by name."""
        if self.read_layouts is not None:
            return dict(self.read_layouts)
        layouts: dict[str, Layout] = {}
        for name in self.selection.names():
            path = self.files.get(name)
            if path is None:
                raise BootstrapError(f"{name}: no package file was fetched", "fetch the selection first")
            with open(path, "rb") as f:
                layouts[name] = read_layout(f, path.name)
        return layouts

    def _headers(self) -> dict[str, Header]:
        """The selection's signed headers, by name."""
        return {name: layout.main for name, layout in self._layouts().items()}

    def order(
        self, headers: Mapping[str, Header] | None = None, tables: Mapping[str, list[FileEntry]] | None = None
    ) -> list[str]:
        """The selection's names, dependencies first (`tables`: each header's files, when known)."""
        headers = headers if headers is not None else self._headers()
        tables = tables if tables is not None else self._tables(headers)
        return install_order(dict(headers), {name: [e.path for e in tables[name]] for name in headers})

    def _tables(self, headers: Mapping[str, Header]) -> dict[str, list[FileEntry]]:
        return {name: file_table(h, self.files[name].name) for name, h in headers.items()}

    def unpack(self, final: bool) -> None:
        """The packages' files in install order, owners named by accounts of a later package given, then
        (unless `final`: `package_database` writes it) the rpm database, made by the host's rpm from the package
        files while they are unpacked."""
        layouts = self._layouts()
        headers = {name: layout.main for name, layout in layouts.items()}
        tables = self._tables(headers)
        names = self.order(headers, tables)
        items = [(name, self.files[name]) for name in names]
        target, options = self.target, self.options
        with contextlib.ExitStack() as stack:
            made: Future[None] | None = None
            kept: keptdb.Kept | None = None
            if not final:
                packages = [(path, skipped(tables[n], options)) for n, path in items]
                tmp = stack.enter_context(rpmdb.scratch(target.root))
                sealed = not options.keys
                slot = self._db_slot(items, packages)
                kept = keptdb.find(*slot) if slot is not None else None
                if kept is None:
                    pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
                    made = pool.submit(rpmdb.make, tmp, packages, target.epoch, target.arch, sealed)
            known = {name: (layouts[name], tables[name]) for name in names}  # read once, for both
            self.unpacked = unpack_all(
                target.root, items, options, target.epoch, target.overrides, known, self.kept, target.check_kept
            )
            reown(target.root, self.unpacked, target.overrides, last=final)  # a later package's accounts
            if not final:
                keys = [] if sealed else self._keys()
                if kept is not None and kept.fits(keys):
                    kept.write(tmp)
                else:
                    if made is None:  # kept with other keys
                        rpmdb.make(tmp, packages, target.epoch, target.arch, sealed)
                    else:
                        made.result()
                    if not sealed:
                        rpmdb.seal(tmp, target.epoch, target.arch, keys)
                    if slot is not None:
                        keptdb.keep(*slot, keys, tmp)
                rpmdb.install(self.tree, options.dbpath, tmp, target.epoch)

    def unpacked_state(self) -> bytes | None:
        """Each package's entries as `unpack` wrote them, in its order: the paths written, those whose owners were
        not known yet, and those whose identity was noted (taken again from the tree on `restore`)."""
        rows = [
            {
                "name": u.name,
                "written": list(u.written),
                "unknown": [f.path for f in u.unknown_owners],
                "identities": sorted(u.identities),
            }
            for u in self.unpacked
        ]
        return json.dumps({"packages": rows}).encode()

    def restore(self, state: bytes) -> bool:
        """The packages as `unpacked_state` gave them, in its order (the install order of these very packages:
        the state is kept under a key of their digests and of this code), their headers read again from their
        files (each one's file table only when asked for, or when an owner is still to give), the identities of
        the entries whose owners come later taken from the tree."""
        try:
            rows = json.loads(state)["packages"]
        except (ValueError, KeyError, TypeError):
            return False
        layouts = self._layouts()
        names = [r.get("name") if isinstance(r, dict) else None for r in rows] if isinstance(rows, list) else []
        if len(names) != len(layouts) or set(names) != set(layouts):
            return False
        tree = self.tree
        unpacked = []
        for row in rows:
            name = row["name"]
            lists = [row.get(k) for k in ("written", "unknown", "identities")]
            if not all(isinstance(v, list) and all(isinstance(p, str) for p in v) for v in lists):
                return False
            written, unknown, noted = lists
            table = tuple(file_table(layouts[name].main, self.files[name].name)) if unknown else None
            by_path = {f.path: f for f in table or ()}
            if not all(p in by_path for p in unknown):
                return False
            identities = {}
            for path in noted:
                with contextlib.suppress(TreeError):
                    st = tree.lstat(tree.resolve(path))
                    if st is not None:
                        identities[path] = (st.st_dev, st.st_ino)
            owners = tuple(by_path[p] for p in unknown)
            unpacked.append(Unpacked(name, self.files[name], layouts[name], tuple(written), owners, identities, table))
        self.unpacked = unpacked
        return True

    def _db_slot(
        self, items: Sequence[tuple[str, Path]], packages: Sequence[tuple[Path, set[str]]]
    ) -> tuple[Path, str] | None:
        """Where the database of these packages (in this order, these files left out) is kept: the area and its
        key; None when nothing derived is kept or a package has no record to name its sha256."""
        if self.kept_db is None:
            return None
        sha256s = {r.name: r.sha256 for r in self.selection.records}
        named = [(sha256s.get(name, ""), left) for (name, _), (_, left) in zip(items, packages, strict=True)]
        if not all(sha256 for sha256, _ in named):
            return None
        return self.kept_db, keptdb.key(named, self.target.epoch, self.target.arch)

    def _keys(self) -> list[tuple[str, bytes]]:
        """The key files the database imports, read from the unpacked tree (the release package installs them)."""
        keys = []
        for path in self.options.keys:
            data = self.tree.read(path.lstrip("/"), limit=rpmdb.MAX_KEY + 1)
            if data is None:
                raise BootstrapError(
                    f"rpm.import-key: the release's key {path} is not in the image",
                    "include the package that installs it (the release package), or set rpm.import-key = false",
                )
            if len(data) > rpmdb.MAX_KEY:
                raise BootstrapError(f"rpm.import-key: {path} is larger than a key file", "check the release package")
            keys.append((path, data))
        return keys

    def _database(self) -> None:
        packages = [(u.path, skipped(list(u.files), self.options)) for u in self.unpacked]
        t = self.target
        rpmdb.write(self.tree, self.options.dbpath, packages, t.epoch, t.arch, self._keys())

    def native_tools(self, host: str) -> int:
        """No native stand-ins for a foreign tree: its scriptlets run emulated."""
        return 0

    def configure(self, runnable: Runnable) -> None:
        """Every scriptlet and trigger in the sandbox (unless the options say scriptless), then the owners the
        scriptlets' accounts name."""
        if self.options.scripts:
            with runnable() as sandbox:
                scriptlets.run(self.tree, self.unpacked, self.target.epoch, sandbox)
        reown(self.target.root, self.unpacked, self.target.overrides, last=True)

    def finish(self) -> None:
        """What the distribution's image build does after the install: the files it moves, the paths it removes
        (globs inside the tree, `removals`), the files it writes (whatever was at their paths replaced, never
        followed; its build date, the epoch's) and appends to, the directories it makes and the modes it sets,
        `systemd-tmpfiles --create`, then the links it makes (symbolic, then hard, then the units it masks). (The
        builds remove before they make, or make nothing their removals reach.)"""
        tree, o = self.tree, self.options
        for path, existing in sorted(o.moves.items()):
            _move(tree, existing.strip("/"), path.strip("/"))
        for match in removals(tree, o.remove):
            tree.remove(match)
        for path, data in sorted(o.write.items()):
            tree.write(path.lstrip("/"), data, mtime=self.target.epoch)
        for path, fmt in sorted(o.dates.items()):
            when = time.strftime(fmt, time.gmtime(self.target.epoch))
            tree.write(path.lstrip("/"), f"{when}\n", mtime=self.target.epoch)
        for path, data in sorted(o.append.items()):
            _append(tree, path.lstrip("/"), data, self.target.epoch)
        for path in o.dirs:
            tree.mkdir(path.strip("/"))
        for path, mode in sorted(o.modes.items()):
            st = tree.lstat(path.strip("/"))
            if st is None or stat.S_ISLNK(st.st_mode):
                raise BootstrapError(f"rpm.modes: {path} is not in the image", "write or make it first, or drop it")
            tree.set_owner_mode(path.strip("/"), st.st_uid, st.st_gid, mode)
        if o.tmpfiles and (not o.tmpfiles_in_image or _runs(tree, SYSTEMD_TMPFILES)):
            tmpfiles.apply(tree, o.tmpfiles, o.tmpfiles_boot)
        for path, target in sorted(o.links.items()):
            rel = path.strip("/")
            if tree.is_dir(rel, follow=False):
                raise BootstrapError(f"rpm.links: {path} is a directory in the image", "link another path")
            tree.symlink(rel, target)  # dated by the layer: no entry is newer than the epoch
        for path, existing in sorted(o.hardlinks.items()):
            tree.hardlink(path.strip("/"), existing.strip("/"))
        if o.mask and _runs(tree, SYSTEMCTL):
            _mask(tree, o.mask)

    def package_database(self) -> None:
        """The database of a scriptless tree (unpacked `final`)."""
        self._database()

    def notices(self) -> dict[str, Notice]:
        """Each package's licences, from its signed header's License tag."""
        out = {}
        for u in self.unpacked:
            expression = u.layout.main.string(tags.LICENSE)
            out[u.name] = Notice(licences(expression), "", "")
        return out

    def script_env(self) -> dict[str, str]:
        return scriptlets.script_env(self.target.epoch)


DEV_NULL = "/dev/null"
SYSTEMCTL = "usr/bin/systemctl"
"""What `systemctl mask` runs: without it, a `%post`'s command is not found and masks nothing."""
SYSTEMD_TMPFILES = "usr/bin/systemd-tmpfiles"
"""What a `%post`'s `systemd-tmpfiles --create` runs (`rpm.tmpfiles-in-image`)."""


def removals(tree: Tree, patterns: Sequence[str]) -> list[str]:
    """What `patterns` remove from the tree, as the shell's globs (`*` matches no `/`, nor a leading `.`): each
    pattern's matches, directories only (not links to them, as `find -type d`) for one ending in `/`, less those a
    `!PATTERN` matches, part by part, as the pattern names them (not as links inside the tree resolve them)."""
    keep = [[part for part in p[1:].split("/") if part] for p in patterns if p.startswith("!")]
    out: list[str] = []
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        for named, real in tree.glob_named(pattern.strip("/"), hidden=False):
            if pattern.endswith("/") and not tree.is_dir(real, follow=False):
                continue
            if real not in out and not any(_names(named, parts) for parts in keep):
                out.append(real)
    return out


def _names(path: str, parts: list[str]) -> bool:
    names = path.split("/")
    return len(names) == len(parts) and all(fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts, strict=True))


def _move(tree: Tree, existing: str, path: str) -> None:
    """`mv EXISTING PATH` (tree-relative): into PATH when it is a directory. What makes `mv` fail (nothing at
    EXISTING, no directory for PATH) is said and passed over, as the build's `%post` goes on."""
    if tree.is_dir(path):
        path = f"{path}/{existing.rsplit('/', 1)[-1]}"
    try:
        if tree.lstat(existing) is None:
            raise FileNotFoundError(f"/{existing} is not in the image")
        tree.rename(existing, path)
    except (OSError, TreeError) as exc:
        log.warning("rpm.moves: mv /%s /%s fails (%s): passed over", existing, path, exc)


def _runs(tree: Tree, program: str) -> bool:
    """Whether the image has `program` (tree-relative) as a file a shell could run, links followed inside it."""
    try:
        st = tree.lstat(tree.resolve(program, follow_last=True))
    except TreeError:
        return False
    return st is not None and stat.S_ISREG(st.st_mode)


def _mask(tree: Tree, units: Sequence[str]) -> None:
    """`systemctl mask UNIT...` in the image: a link to /dev/null in /etc/systemd/system for each unit; one with
    something else at that path is left, as systemctl refuses it."""
    for unit in units:
        rel = f"etc/systemd/system/{unit}"
        st = tree.lstat(rel)
        if st is not None and not (stat.S_ISLNK(st.st_mode) and os.readlink(tree.path(tree.resolve(rel))) == DEV_NULL):
            log.warning("rpm.mask: /%s is already there: systemctl mask leaves it", rel)
            continue
        tree.symlink(rel, DEV_NULL)


def _append(tree: Tree, rel: str, data: bytes, epoch: int) -> None:
    """`echo ... >> file`: the file's text with `data` after it (a missing file made, 0644), its mode and owner
    kept; through a symbolic link, its target's (inside the tree)."""
    rel = tree.resolve(rel, follow_last=True) or rel
    st = tree.lstat(rel)
    old = tree.read_whole(rel, "rpm.append") or b""
    if st is None or not stat.S_ISREG(st.st_mode):
        tree.write(rel, old + data, mtime=epoch)
    else:
        tree.write(rel, old + data, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, mtime=epoch)
