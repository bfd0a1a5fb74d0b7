"""The targets, the printed table and the JSON file of a benchmark."""

import json
from pathlib import Path
from typing import Any

from bench.stats import Target

STEP_COLUMNS = ("indexes", "resolve", "download", "unpack", "configure", "finish", "pack", "outputs", "rest")


def targets(suite: dict[str, Any]) -> list[Target]:
    """What bootstrap aims for on this suite; a target without a measurement is N/A."""
    s = suite["suite"]
    pairs = {(r["ours"], r["theirs"]): r for r in suite.get("ratios", [])}
    micro = suite.get("micro", {})
    ours = [suite["cases"].get(c, {}) for c in ("bootstrap-warm", "bootstrap-empty")]
    rss = [x["peak_rss_mb"] for c in ours for x in c.get("samples", [])]

    def median(section: dict[str, Any], key: str) -> float | None:
        value = section.get(key)
        return value["median"] if isinstance(value, dict) else None

    return [
        Target(
            f"{s}: warm bootstrap / mmdebstrap, wall",
            pairs.get(("bootstrap-warm", "mmdebstrap"), {}).get("wall"),
            0.2,
            "x",
        ),
        Target(
            f"{s}: empty-cache bootstrap / mmdebstrap, wall",
            pairs.get(("bootstrap-empty", "mmdebstrap"), {}).get("wall"),
            0.5,
            "x",
        ),
        Target(
            f"{s}: arm64 bootstrap / mmdebstrap, wall",
            pairs.get(("bootstrap-arm64", "mmdebstrap-arm64"), {}).get("wall"),
            0.35,
            "x",
        ),
        Target(f"{s}: main index parse, cold", median(micro, "parse_cold"), 1.0, "s"),
        Target(f"{s}: main index load, cached", median(micro, "load_cached"), 0.2, "s"),
        Target(f"{s}: check, nothing changed", median(suite.get("check", {}), "wall"), 2.0, "s"),
        Target(f"{s}: signing adds to a warm build, wall", (suite.get("signing") or {}).get("added_wall"), 0.2, "s"),
        Target(f"{s}: bootstrap peak RSS, largest of all runs", max(rss) if rss else None, 300.0, "MB"),
    ]


def rpm_targets(rpm: dict[str, Any]) -> list[Target]:
    """The RPM comparison's target at its scale: a warm build at most a quarter of dnf --installroot's time, with
    dnf's installroot on disk (as a user runs it) and on a tmpfs (as bootstrap's root builds unpack)."""
    scale = rpm.get("scale", "miniature")
    return [
        Target(f"rpm {scale}: warm bootstrap / dnf --installroot, wall", rpm.get("ratio_wall"), 0.25, "x"),
        Target(f"rpm {scale}: ... / dnf --installroot on a tmpfs, wall", rpm.get("ratio_wall_tmpfs"), 0.25, "x"),
    ]


def rpm_table(rpm: dict[str, Any]) -> str:
    """The readable summary of the RPM comparison."""
    names = rpm.get("request", [])
    request = " ".join(names) if len(names) <= 10 else f"{' '.join(names[:6])} and {len(names) - 6} more"
    scale = rpm.get("scale", "miniature")
    lines = [f"== rpm {scale} (fixture repository on 127.0.0.1, request: {request}): {rpm['runs']} timed runs each"]
    if rpm.get("failure"):
        return "\n".join([*lines, f"not measured: {rpm['failure']}"])
    lines.append(f"{'case':<20} {'wall s':>20} {'CPU s':>20} {'peak RSS MB':>22} {'tree MB':>8} {'pkgs':>5}")
    for name, c in rpm["cases"].items():
        if c.get("failure"):
            lines.append(f"{name:<20} FAILED: {c['failure'].splitlines()[0]}")
            continue
        lines.append(
            f"{name:<20} {_span(c.get('wall')):>20} {_span(c.get('cpu')):>20} {_span(c.get('peak_rss_mb'), 1):>22} "
            f"{_mb(c.get('uncompressed_bytes')):>8} {c.get('packages') or '-':>5}"
        )
        if c.get("steps"):
            lines.append("  steps, median s: " + ", ".join(f"{k} {v['median']:.2f}" for k, v in c["steps"].items()))
        if len(c.get("warm_ups", ())) > 1:
            lines.append("  untimed warm-ups, wall s: " + ", ".join(f"{w:.2f}" for w in c["warm_ups"]))
    lines.append(f"warm bootstrap / dnf --installroot, wall medians: {_num(rpm.get('ratio_wall'))}")
    lines.append(f"warm bootstrap / dnf --installroot on a tmpfs, wall medians: {_num(rpm.get('ratio_wall_tmpfs'))}")
    return "\n".join(lines)


def _span(summary: dict[str, Any] | None, digits: int = 2) -> str:
    if not summary:
        return "-"
    return f"{summary['median']:.{digits}f} [{summary['min']:.{digits}f}-{summary['max']:.{digits}f}]"


def _mb(value: int | None) -> str:
    return f"{value / 1e6:.1f}" if value else "-"


def _num(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def suite_table(suite: dict[str, Any]) -> str:
    """The readable summary of one suite."""
    archive = ", ".join(f"{a['dist']} {a.get('inrelease_sha256', '')[:12]}" for a in suite.get("archive", []))
    lines = [f"== {suite['suite']}: {suite['runs']} timed runs each, median [min-max]; InRelease: {archive}"]
    head = f"{'case':<16} {'wall s':>20} {'CPU s':>20} {'peak RSS MB':>22} {'output MB':>10} {'tar MB':>8} {'pkgs':>5}"
    lines.append(head)
    failures: list[str] = []
    for name, c in suite["cases"].items():
        if c.get("failure"):
            failures.append(f"{name} FAILED: {c['failure'].splitlines()[0]} (log tail in the JSON)")
        if not c["samples"]:
            lines.append(f"{name:<16} FAILED")
            continue
        lines.append(
            f"{name:<16} {_span(c.get('wall')):>20} {_span(c.get('cpu')):>20} {_span(c.get('peak_rss_mb'), 1):>22} "
            f"{_mb(c.get('output_bytes')):>10} {_mb(c.get('uncompressed_bytes')):>8} {c.get('packages') or '-':>5}"
        )
    lines.append(f"{'ours/theirs, medians':<34} {'wall':>7} {'CPU':>7} {'RSS':>7} {'tar size':>9}")
    for r in suite.get("ratios", []):
        pair = f"{r['ours']} / {r['theirs']}"
        lines.append(
            f"{pair:<34} {_num(r['wall']):>7} {_num(r['cpu']):>7} {_num(r['peak_rss_mb']):>7} {_num(r['size']):>9}"
        )
    lines.append(f"{'steps, median s':<16}" + "".join(f"{s:>10}" for s in STEP_COLUMNS))
    for name, c in suite["cases"].items():
        if "steps" in c:
            cells = (f"{c['steps'][s]['median']:.2f}" if s in c["steps"] else "-" for s in STEP_COLUMNS)
            lines.append(f"{name:<16}" + "".join(f"{x:>10}" for x in cells))
    m, check = suite.get("micro"), suite.get("check")
    if m:
        lines.append(
            f"{m['index']} of {m['dist']} ({m['packages']:,} packages, {m['text_bytes'] / 1e6:.0f} MB of text): "
            f"parse {_span(m['parse_cold'], 3)} s cold, {_span(m['parse_cold_with_decompression'], 3)} s with "
            f"decompression, {_span(m['load_cached'], 3)} s cached"
        )
        lines.append(
            f"indexes step with a warm cache {_span(m['indexes_step_cached'], 3)} s; "
            f"resolve {_span(m['resolve'], 3)} s ({m['selected']} packages)"
        )
    if check:
        codes = ",".join(str(c) for c in check["returncodes"])
        lines.append(f"check --against an unchanged build: {_span(check['wall'])} s wall (exit {codes})")
    signing = suite.get("signing")
    if signing:
        lines.append(
            f"signing adds {signing['added_wall']:.3f} s to a warm build (medians: signed "
            f"{_span(signing['signed_wall'])} s, unsigned {_span(signing['unsigned_wall'])} s)"
        )
    lines += failures
    if suite.get("upstream_fetches_during_timed_runs"):
        lines.append(f"WARNING: {suite['upstream_fetches_during_timed_runs']} upstream fetches during timed runs")
    return "\n".join(lines)


def targets_table(found: list[Target]) -> str:
    lines = ["== targets (a MISS is reported, not fatal)"]
    for t in found:
        measured = f"{t.measured:.3g}" if t.measured is not None else "-"
        lines.append(f"  {t.verdict:<4}  {t.name:<52} {measured:>9} {t.unit:<2} (at most {t.limit:g} {t.unit})")
    return "\n".join(lines)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
