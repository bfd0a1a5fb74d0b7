"""The packages' scriptlets, run inside the sandbox in the order rpm runs them in one transaction (its psm.c):
for each package in install order, its %pre, the %filetriggerin scripts of priority 10000 and above, its %post
($1 = 1), the %triggerin scripts it sets off and those of its own that installed packages set off, then the
%filetriggerin scripts below priority 10000; after every package, each %posttrans, then the %transfiletriggerin
scripts. A %filetriggerin fires as rpm's does: an installed package's trigger (the new one's own included) with
the new package's matching paths on stdin, and the new package's own trigger with every installed matching path;
a %transfiletriggerin once per trigger with every matching path. Triggers of one package run by priority, the
highest first; those of several, by priority, then install order. Everything is one shell script run once in the
sandbox: the scriptlet bodies are written into the tree first and removed after.

The tree's files are all in place before the first scriptlet (as a debootstrapped tree's are before the first
preinst), so a package's paths are those the unpack wrote. %pretrans and %triggerprein are not run: they prepare the
root for an unpack which here has come first (a %pretrans of a fresh install runs in an empty root, so only rpm's
Lua runs it, as filesystem's makes the directories and links its own payload then holds); the build says which
packages had one. A %pre that fails
stops the build, as it stops rpm's install of that package; another failing scriptlet is a warning, as in rpm.
Scriptlets in rpm's built-in Lua (`<lua>`) run in the tree's own rpm (`rpm --eval '%{lua: ...}'`, with `arg` as
rpm gives it, and a file trigger's `rpm.next_file()` giving the paths a shell trigger reads on stdin); in a tree
without rpm they are refused."""

import operator
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from bootstrap.errors import ConfigureError
from bootstrap.host.sandbox import Sandbox
from bootstrap.host.tree import Tree
from bootstrap.log import log
from bootstrap.numbers import is_decimal
from bootstrap.rpm import tags
from bootstrap.rpm.header import Header
from bootstrap.rpm.unpack import Unpacked
from bootstrap.rpm.versions import compare_evr

STAGE = ".bootstrap-scriptlets"
"""Where the scriptlets are staged in the tree: a directory of its own at the root, removed whole after."""
FAILED = "bootstrap: scriptlet failed: "
_MARK = re.compile(re.escape(FAILED) + r"(\d+) (\d+)")
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PRIORITY = 1000000
PRIORITY_BOUND = 10000
"""rpm's TRIGGER_PRIORITY_BOUND: file triggers of this priority or higher run before the package's %post."""


def script_env(epoch: int) -> dict[str, str]:
    """The whole environment of the scriptlets (rpm's install script PATH): nothing of the host's."""
    return {"PATH": PATH, "HOME": "/root", "LANG": "C", "LC_ALL": "C", "TZ": "UTC", "SOURCE_DATE_EPOCH": str(epoch)}


@dataclass(frozen=True)
class Scriptlet:
    what: str
    """`glibc %post`: for messages."""
    prog: tuple[str, ...]
    body: str
    args: tuple[str, ...] = ("1",)
    stdin: tuple[str, ...] | None = None
    """Paths given on stdin (file triggers)."""
    fatal: bool = False


def _one(h: Header, what: str, body_tag: int, prog_tag: int) -> Scriptlet | None:
    body, prog = h.string(body_tag), tuple(h.strings(prog_tag))
    if not body and not prog:
        return None
    return Scriptlet(what, prog or ("/bin/sh",), body)


@dataclass(frozen=True)
class _FileTrigger:
    """One file trigger of a package: every prefix it names, its priority, its script."""

    owner: int
    """The package's place in install order."""
    index: int
    prefixes: tuple[str, ...]
    priority: int
    script: Scriptlet

    def matches(self, paths: Sequence[str]) -> tuple[str, ...]:
        """The paths under any of its prefixes, sorted, each once (what the script reads on stdin)."""
        return tuple(sorted({p for p in paths if p.startswith(self.prefixes)}))

    @property
    def order(self) -> tuple[int, int, int]:
        """rpm's order of triggers: priority (the highest first), then the owner's install order, then index."""
        return (-self.priority, self.owner, self.index)


def _file_triggers(h: Header, owner: int, name: str, which: tuple[int, ...], kind: str) -> list[_FileTrigger]:
    """The `in` file triggers of a header, one per trigger index with all its prefixes."""
    scripts_tag, prog_tag, name_tag, index_tag, flags_tag, prio_tag = which
    scripts, progs = h.strings(scripts_tag), h.strings(prog_tag)
    names, index, flags, prios = h.strings(name_tag), h.int32(index_tag), h.int32(flags_tag), h.int32(prio_tag)
    prefixes: dict[int, list[str]] = {}
    for i, prefix in enumerate(names):
        if i < len(index) and i < len(flags) and flags[i] & tags.RPMSENSE_TRIGGERIN and index[i] < len(scripts):
            prefixes.setdefault(index[i], []).append(prefix)
    out = []
    for n, found in sorted(prefixes.items()):
        prog = (progs[n],) if n < len(progs) and progs[n] else ("/bin/sh",)
        prio = prios[n] if n < len(prios) else DEFAULT_PRIORITY
        out.append(_FileTrigger(owner, n, tuple(found), prio, Scriptlet(f"{name} {kind}", prog, scripts[n])))
    return out


def _fire(trigger: _FileTrigger, paths: Sequence[str]) -> list[Scriptlet]:
    matched = trigger.matches(paths)
    s = trigger.script
    return [Scriptlet(s.what, s.prog, s.body, ("1",), matched)] if matched else []


@dataclass(frozen=True)
class _Trigger:
    """A %triggerin: the package it names, the version it asks of it (`>= 2.0`: sense bits and version)."""

    target: str
    sense: int
    version: str
    script: Scriptlet

    def set_off_by(self, h: Header) -> bool:
        """Whether the installed package of header `h` sets it off: its name, and its version if one is asked."""
        if h.string(tags.NAME) != self.target:
            return False
        wanted = self.sense & (tags.RPMSENSE_LESS | tags.RPMSENSE_GREATER | tags.RPMSENSE_EQUAL)
        if not wanted or not self.version:
            return True
        epoch = h.int32(tags.EPOCH)
        evr = f"{epoch[0] if epoch else 0}:{h.string(tags.VERSION)}-{h.string(tags.RELEASE)}"
        order = compare_evr(evr, self.version)
        return bool(
            (order < 0 and wanted & tags.RPMSENSE_LESS)
            or (order > 0 and wanted & tags.RPMSENSE_GREATER)
            or (order == 0 and wanted & tags.RPMSENSE_EQUAL)
        )


def _package_triggers(h: Header, name: str) -> list[_Trigger]:
    """Each %triggerin of a header."""
    scripts, progs = h.strings(tags.TRIGGERSCRIPTS), h.strings(tags.TRIGGERSCRIPTPROG)
    index, flags, versions = h.int32(tags.TRIGGERINDEX), h.int32(tags.TRIGGERFLAGS), h.strings(tags.TRIGGERVERSION)
    out = []
    for i, target in enumerate(h.strings(tags.TRIGGERNAME)):
        if i < len(flags) and i < len(index) and flags[i] & tags.RPMSENSE_TRIGGERIN and index[i] < len(scripts):
            prog = (progs[index[i]],) if index[i] < len(progs) and progs[index[i]] else ("/bin/sh",)
            version = versions[i] if i < len(versions) else ""
            condition = f" {_SENSE.get(flags[i] & 14, '')} {version}" if version else ""
            what = f"{name} %triggerin -- {target}{condition}"
            out.append(_Trigger(target, flags[i], version, Scriptlet(what, prog, scripts[index[i]], ("1", "1"))))
    return out


_SENSE = {2: "<", 4: ">", 8: "=", 10: "<=", 12: ">="}


def _set_off(triggers: Sequence[list[_FileTrigger]], written: Sequence[list[str]], upper: bool) -> list[Scriptlet]:
    """The %filetriggerin scripts the last of the installed packages sets off, of the upper priority class (10000
    and above, before its %post) or the lower: the installed packages' triggers (its own among them) for its paths,
    then its own triggers for every installed path. `triggers` and `written`: each installed package's."""
    fired: list[Scriptlet] = []
    for t in sorted((t for ts in triggers for t in ts if (t.priority >= PRIORITY_BOUND) == upper), key=_ORDER):
        fired += _fire(t, written[-1])
    own = sorted((t for t in triggers[-1] if (t.priority >= PRIORITY_BOUND) == upper), key=_ORDER)
    if own:  # every installed path, gathered only for a package that has triggers of its own
        everything = [p for paths in written for p in paths]
        for t in own:
            fired += _fire(t, everything)
    return fired


_ORDER = operator.attrgetter("order")


def plan(unpacked: Sequence[Unpacked]) -> list[Scriptlet]:
    """Every scriptlet of the transaction, in the order rpm runs them (see the module's docstring)."""
    out: list[Scriptlet] = []
    written = [sorted(u.written) for u in unpacked]
    file_triggers = [
        _file_triggers(u.layout.main, n, u.name, tags.FILETRIGGER, "%filetriggerin") for n, u in enumerate(unpacked)
    ]
    package_triggers = [_package_triggers(u.layout.main, u.name) for u in unpacked]
    for n, u in enumerate(unpacked):
        h = u.layout.main
        pre = _one(h, f"{u.name} %pre", tags.PREIN, tags.PREINPROG)
        if pre is not None:
            out.append(Scriptlet(pre.what, pre.prog, pre.body, fatal=True))
        out += _set_off(file_triggers[: n + 1], written[: n + 1], upper=True)
        post = _one(h, f"{u.name} %post", tags.POSTIN, tags.POSTINPROG)
        if post is not None:
            out.append(post)
        # the installed packages' triggers (its own too) it sets off, then its own that installed packages set off
        out += [t.script for triggers in package_triggers[: n + 1] for t in triggers if t.set_off_by(h)]
        for own in package_triggers[n]:
            out += [own.script for other in unpacked[:n] if own.set_off_by(other.layout.main)][:1]
        out += _set_off(file_triggers[: n + 1], written[: n + 1], upper=False)
    for u in unpacked:
        posttrans = _one(u.layout.main, f"{u.name} %posttrans", tags.POSTTRANS, tags.POSTTRANSPROG)
        if posttrans is not None:
            out.append(Scriptlet(posttrans.what, posttrans.prog, posttrans.body, ()))
    everything = sorted({p for paths in written for p in paths})
    for n, u in enumerate(unpacked):
        at_end = _file_triggers(u.layout.main, n, u.name, tags.TRANSFILETRIGGER, "%transfiletriggerin")
        for t in sorted(at_end, key=_ORDER):
            out += _fire(t, everything)
    return out


def passed_over(unpacked: Sequence[Unpacked]) -> list[str]:
    """The scriptlets of the packages that are not run, as `name %pretrans` and `name %triggerprein`."""
    out = []
    for u in unpacked:
        h = u.layout.main
        if _one(h, "", tags.PRETRANS, tags.PRETRANSPROG) is not None:
            out.append(f"{u.name} %pretrans")
        if any(f & tags.RPMSENSE_TRIGGERPREIN for f in h.int32(tags.TRIGGERFLAGS)):
            out.append(f"{u.name} %triggerprein")
    return out


LUA_RPM = "/usr/bin/rpm"


def _lua(s: Scriptlet, n: int, has_rpm: bool) -> list[str]:
    """The tree's rpm running a Lua scriptlet from its staged file, `arg` set as rpm sets it; a file trigger's
    `rpm.next_file()` gives the matched paths one by one (those a shell trigger reads on stdin, a line each, so
    a path with a newline in it reads as two, as for a shell trigger), then nil."""
    if not has_rpm:
        why = f"the tree has no {LUA_RPM} to run it"
        raise ConfigureError(f"{s.what} is written in rpm's built-in Lua: {why}", "build the recipe scriptless")
    if not all(is_decimal(a) for a in s.args):  # counts, rpm's only arguments: quoted as they are
        raise ConfigureError(f"{s.what}: arguments {s.args!r} are not counts", "this is a bug in bootstrap")
    args = ", ".join(f"'{a}'" for a in ("<lua>", *s.args))
    files = ""
    if s.stdin is not None:
        files = (
            f"local paths = {{}}; for p in io.lines('/{STAGE}/{n}.in') do paths[#paths + 1] = p end; "
            "local i = 0; rpm.next_file = function() i = i + 1; return paths[i] end; "
        )
    return [LUA_RPM, "--eval", f"%{{lua: _G.arg = {{{args}}}; {files}dofile('/{STAGE}/{n}')}}"]


def driver(scriptlets: Sequence[Scriptlet], has_rpm: bool = False) -> str:
    """The shell script that runs them all from the staged files (`STAGE/N`, `STAGE/N.in`)."""
    lines = ["cd /"]
    for n, s in enumerate(scriptlets):
        if s.prog[0] == "<lua>":
            argv = _lua(s, n, has_rpm)
        else:
            argv = list(s.prog)
            if s.body:
                argv += [f"/{STAGE}/{n}", *s.args]
        cmd = " ".join(shlex.quote(a) for a in argv)
        cmd += f" < /{STAGE}/{n}.in" if s.stdin is not None else " < /dev/null"
        status = f'{{ echo "{FAILED}{n} $?"; '
        lines.append(f"{cmd} || {status}{'exit 1; ' if s.fatal else ''}}}")
    return "\n".join(lines) + "\n"


def run(tree: Tree, unpacked: Sequence[Unpacked], epoch: int, sandbox: Sandbox) -> None:
    """Run every scriptlet of the transaction in the sandbox (a failing %pre is an error, others warnings)."""
    skipped = passed_over(unpacked)
    if skipped:
        log.info("not run, as the unpack they prepare for has come first: %s", ", ".join(skipped))
    scriptlets = plan(unpacked)
    if not scriptlets:
        return
    text = driver(scriptlets, tree.lstat(LUA_RPM.lstrip("/")) is not None)
    try:
        for n, s in enumerate(scriptlets):
            if s.body:
                tree.write(f"{STAGE}/{n}", s.body + "\n", 0o755)
            if s.stdin is not None:
                tree.write(f"{STAGE}/{n}.in", "".join(p + "\n" for p in s.stdin), 0o644)
        proc = sandbox.run(["/bin/sh", "-c", text], script_env(epoch))
    finally:
        tree.remove(STAGE)
    log.debug("%s", proc.stdout.rstrip())
    marks = (_MARK.fullmatch(line) for line in proc.stdout.splitlines())
    failed = [(int(m[1]), m[2]) for m in marks if m is not None and int(m[1]) < len(scriptlets)]
    for number, status in failed:
        s = scriptlets[number]
        said = proc.stdout.split(f"{FAILED}{number} ")[0].strip().splitlines()[-1:] or ["no output"]
        if s.fatal:
            raise ConfigureError(f"{s.what} failed (exit status {status}): {said[0]}", "run with -v to see its output")
        log.warning("%s scriptlet failed, exit status %s", s.what, status)
    if proc.returncode != 0 and not failed:
        raise ConfigureError(f"the scriptlets could not run: {proc.stdout.strip()[-200:]}", "the tree needs /bin/sh")
