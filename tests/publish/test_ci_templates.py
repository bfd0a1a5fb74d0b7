"""The README's CI files as they stand there: GitHub's workflows pass GitHub's workflow schema and actionlint,
GitLab's pipeline and the child pipeline its plan job writes (for a fleet over GitLab's 200 jobs a matrix) pass
GitLab's CI schema; and the checks refuse what GitHub and GitLab would (a retired action, a matrix too big)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from ruamel.yaml import YAML

from tests.cli.test_cli import ROOT, cli

BIN = Path(sys.executable).parent
BLOCKS = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
WORKFLOW, PART_WORKFLOW, GITLAB = BLOCKS  # the README's CI files, in its order
BIG = 264  # jobs: more than GitHub's 256 a matrix and GitLab's 200 a parallel:matrix


def _load(text: str) -> Any:
    return YAML(typ="safe").load(text)


def _schema(name: str, path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema's command with the schema it vendors as `name`, run in this process through click's test
    runner: its own checks, without a Python start and jsonschema's import (seconds) each time."""
    from check_jsonschema.cli.main_command import main

    argv = ["--builtin-schema", name, str(path)]
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    return subprocess.CompletedProcess(["check-jsonschema", *argv], result.exit_code, result.stdout, result.stderr)


def _actionlint(repo: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """actionlint over `files`, laid out as a repository's .github/workflows (it follows local reusable calls)."""
    workflows = repo / ".github" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (workflows / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return subprocess.run([BIN / "actionlint", "-no-color", *files], capture_output=True, text=True, cwd=workflows)


def _big_fleet(tmp_path: Path) -> Path:
    """A fleet of BIG jobs: 66 images of 2 suites and 2 architectures."""
    images = "".join(
        f'[[image]]\nrecipe = "debian-slim"\nsuites = ["bookworm", "trixie"]\narches = ["amd64", "arm64"]\n'
        f'push = ["127.0.0.1:5000/r{i}:{{codename}}"]\n\n'
        for i in range(BIG // 4)
    )
    path = tmp_path / "fleet.toml"
    path.write_text(images)
    return path


def test_github_workflows_pass_the_schema_and_actionlint(tmp_path: Path) -> None:
    files = {"base-images.yml": WORKFLOW, "base-images-part.yml": PART_WORKFLOW}
    assert _load(WORKFLOW)["jobs"]["build"]["uses"] == "./.github/workflows/base-images-part.yml"
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        checked = _schema("vendor.github-workflows", tmp_path / name)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    linted = _actionlint(tmp_path / "repo", files)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    # What actionlint says of an action on a runtime GitHub retires (checkout@v4 runs on node20).
    old = {name: text.replace("actions/checkout@v6", "actions/checkout@v4") for name, text in files.items()}
    stale = _actionlint(tmp_path / "old", old)
    assert stale.returncode == 1 and 'runtime "node20" is deprecated' in stale.stdout, stale.stdout


def test_a_big_fleet_is_split_into_parts_githubs_workflow_runs(tmp_path: Path) -> None:
    fleet = _big_fleet(tmp_path)
    proc = cli("fleet", str(fleet), "--matrix")
    assert proc.returncode == 0, proc.stderr
    parts = json.loads(proc.stdout)["include"]
    assert [p["part"] for p in parts] == ["1/2", "2/2"]
    jobs = [j["job"] for p in parts for j in p["jobs"]["include"]]
    assert [len(p["jobs"]["include"]) for p in parts] == [BIG // 2, BIG // 2] and len(set(jobs)) == BIG
    # Each part as the reusable workflow sees it: its matrix written in, checked as a workflow.
    for p in parts:
        seen = PART_WORKFLOW.replace("${{ fromJSON(inputs.jobs) }}", json.dumps(p["jobs"]))
        assert seen != PART_WORKFLOW
        (tmp_path / "part.yml").write_text(seen)
        checked = _schema("vendor.github-workflows", tmp_path / "part.yml")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        linted = _actionlint(tmp_path / "repo", {"base-images-part.yml": seen})
        assert linted.returncode == 0, linted.stdout + linted.stderr


def test_gitlab_pipeline_and_the_child_pipeline_it_writes_pass_the_schema(tmp_path: Path) -> None:
    (tmp_path / ".gitlab-ci.yml").write_text(GITLAB)
    checked = _schema("vendor.gitlab-ci", tmp_path / ".gitlab-ci.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The plan job's script, run as GitLab would, with `.venv/bin/bootstrap` this checkout's.
    fleet = _big_fleet(tmp_path)
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "bootstrap").write_text(f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m bootstrap "$@"\n')
    (venv / "bootstrap").chmod(0o755)
    for line in _load(GITLAB)["plan"]["script"]:
        if line.startswith("make deps"):
            continue
        env = {**os.environ, "FLEET": fleet.name}
        subprocess.run(["bash", "-euc", line], check=True, cwd=tmp_path, env=env)
    child = tmp_path / "fleet-jobs.yml"
    checked = _schema("vendor.gitlab-ci", child)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = _load(child.read_text())
    assert jobs[".fleet-job"]["tags"] == ["$ARCH"] and '--job "$JOB"' in jobs[".fleet-job"]["script"][1]
    parts = [jobs[name]["parallel"]["matrix"] for name in ("fleet-part-1", "fleet-part-2")]
    assert len(jobs) == 3 and [len(p) for p in parts] == [BIG // 2, BIG // 2]
    assert all(jobs[f"fleet-part-{k}"]["extends"] == ".fleet-job" for k in (1, 2))

    # One parallel:matrix of them all, as `--matrix gitlab` wrote before it split: GitLab's schema refuses it.
    whole = {
        ".fleet-job": jobs[".fleet-job"],
        "fleet": {"extends": ".fleet-job", "parallel": {"matrix": parts[0] + parts[1]}},
    }
    child.write_text(json.dumps(whole))
    refused = _schema("vendor.gitlab-ci", child)
    assert refused.returncode == 1 and "fleet" in refused.stdout, refused.stdout
