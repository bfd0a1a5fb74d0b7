"""The packages' scriptlets, run inside the sandbox as rpm runs them in one transaction: each package's %pre and
%post in install order ($1 = 1), then the %triggerin scripts of installed packages naming an installed package,
the %filetriggerin scripts (the matching installed paths on stdin), every %posttrans, and last the
%transfiletriggerin scripts. Everything is one shell script run once in the sandbox: the scriptlet bodies are
written into the tree first and removed after.

The tree's files are all in place before the first scriptlet (as a debootstrapped tree's are before the first
preinst), and a file trigger runs once for all the paths it matches, not once per package. %pretrans is not run:
it prepares an empty root for the unpack, which here has come first. A %pre that fails
stops the build, as it stops rpm's install of that package; another failing scriptlet is a warning, as in rpm.
Scriptlets in rpm's built-in Lua (`<lua>`) run in the tree's own rpm (`rpm --eval '%{lua: ...}'`, with `arg` as
rpm gives it); a tree without rpm, or a Lua file trigger (which reads `rpm.next_file`), is refused."""

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from bootstrap.errors import ConfigureError
from bootstrap.host.sandbox import Sandbox
from bootstrap.host.tree import Tree
from bootstrap.log import log
from bootstrap.rpm import tags
from bootstrap.rpm.header import Header
from bootstrap.rpm.unpack import Unpacked

STAGE = ".bootstrap-scriptlets"
"""Where the scriptlets are staged in the tree: a directory of its own at the root, removed whole after."""
FAILED = "bootstrap: scriptlet failed: "
_MARK = re.compile(re.escape(FAILED) + r"(\d+) (\d+)")
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_PRIORITY = 1000000


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


def _triggers(h: Header, owner: str, which: tuple[int, ...], kind: str) -> list[tuple[int, str, Scriptlet]]:
    """(priority, prefix, scriptlet) of each `in` file trigger of a header."""
    scripts_tag, prog_tag, name_tag, index_tag, flags_tag, prio_tag = which
    scripts, progs = h.strings(scripts_tag), h.strings(prog_tag)
    names, index, flags, prios = h.strings(name_tag), h.int32(index_tag), h.int32(flags_tag), h.int32(prio_tag)
    out = []
    for i, prefix in enumerate(names):
        if i >= len(index) or i >= len(flags) or not flags[i] & tags.RPMSENSE_TRIGGERIN or index[i] >= len(scripts):
            continue
        n = index[i]
        prog = (progs[n],) if n < len(progs) and progs[n] else ("/bin/sh",)
        prio = prios[n] if n < len(prios) else DEFAULT_PRIORITY
        out.append((prio, prefix, Scriptlet(f"{owner} {kind}", prog, scripts[n])))
    return out


def plan(unpacked: Sequence[Unpacked]) -> list[Scriptlet]:
    """Every scriptlet of the transaction, in the order rpm runs them (see the module's docstring)."""
    out: list[Scriptlet] = []
    names = {u.name for u in unpacked}
    for u in unpacked:
        h = u.layout.main
        pre = _one(h, f"{u.name} %pre", tags.PREIN, tags.PREINPROG)
        if pre is not None:
            out.append(Scriptlet(pre.what, pre.prog, pre.body, fatal=True))
        post = _one(h, f"{u.name} %post", tags.POSTIN, tags.POSTINPROG)
        if post is not None:
            out.append(post)
    for u in unpacked:
        h = u.layout.main
        scripts, progs = h.strings(tags.TRIGGERSCRIPTS), h.strings(tags.TRIGGERSCRIPTPROG)
        index, flags = h.int32(tags.TRIGGERINDEX), h.int32(tags.TRIGGERFLAGS)
        for i, target in enumerate(h.strings(tags.TRIGGERNAME)):
            if i < len(flags) and flags[i] & tags.RPMSENSE_TRIGGERIN and target in names and index[i] < len(scripts):
                prog = (progs[index[i]],) if index[i] < len(progs) else ("/bin/sh",)
                out.append(Scriptlet(f"{u.name} %triggerin -- {target}", prog, scripts[index[i]], ("1", "1")))
    paths = sorted({p for u in unpacked for p in u.written})
    out += _file_triggers(unpacked, paths, tags.FILETRIGGER, "%filetriggerin")
    for u in unpacked:
        posttrans = _one(u.layout.main, f"{u.name} %posttrans", tags.POSTTRANS, tags.POSTTRANSPROG)
        if posttrans is not None:
            out.append(Scriptlet(posttrans.what, posttrans.prog, posttrans.body, ()))
    out += _file_triggers(unpacked, paths, tags.TRANSFILETRIGGER, "%transfiletriggerin")
    return out


def _file_triggers(
    unpacked: Sequence[Unpacked], paths: list[str], which: tuple[int, ...], kind: str
) -> list[Scriptlet]:
    found = [t for u in unpacked for t in _triggers(u.layout.main, u.name, which, kind)]
    out = []
    by_script: dict[str, tuple[int, Scriptlet, list[str]]] = {}
    for prio, prefix, s in found:
        matched = [p for p in paths if p.startswith(prefix)]
        key = f"{s.what}\0{s.body}"
        if key in by_script:
            by_script[key][2].extend(matched)
        else:
            by_script[key] = (prio, s, matched)
    for _prio, s, matched in sorted(by_script.values(), key=lambda t: (-t[0], t[1].what)):
        if matched:
            out.append(Scriptlet(s.what, s.prog, s.body, ("1",), tuple(sorted(set(matched)))))
    return out


LUA_RPM = "/usr/bin/rpm"


def _lua(s: Scriptlet, n: int, has_rpm: bool) -> list[str]:
    """The tree's rpm running a Lua scriptlet from its staged file, `arg` set as rpm sets it."""
    if not has_rpm or s.stdin is not None:
        why = "a Lua file trigger" if s.stdin is not None else f"the tree has no {LUA_RPM} to run it"
        raise ConfigureError(f"{s.what} is written in rpm's built-in Lua: {why}", "build the recipe scriptless")
    args = ", ".join(f"'{a}'" for a in ("<lua>", *s.args))
    return [LUA_RPM, "--eval", f"%{{lua: _G.arg = {{{args}}}; dofile('/{STAGE}/{n}')}}"]


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
