"""The table of recipe settings: every recipe, shipped, in the README or with every key set, reads back from what
`as_dict` records (build.json and `verify` rely on it); the Recipe's attributes are the table's; the README's
key table is the generated one."""

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bootstrap.build import recipe, settings
from bootstrap.build.recipe import Recipe, from_data, load
from bootstrap.build.recipe_schema import readme_table, template
from bootstrap.build.settings import SCHEMA, Setting
from bootstrap.errors import RecipeError

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def round_trips(r: Recipe) -> None:
    recorded = r.as_dict()
    again = from_data(recorded, r.name, r.source)
    assert again == r
    assert again.as_dict() == recorded


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "recipes").glob("*.toml")))
def test_every_shipped_recipe_reads_back_from_its_record(name: str) -> None:
    round_trips(load(name))


def _readme_recipes() -> list[tuple[str, str]]:
    blocks = re.findall(r"```toml\n(.*?)```", README, re.S)
    return [(b.split("\n", 1)[0].lstrip("# ").split(":")[0], b) for b in blocks if "extends" in tomllib.loads(b)]


def _materialize(directory: Path, text: str) -> Path:
    """The README's recipe in a directory with the local files it names, a host in place of its placeholders."""
    text = re.sub(r"<[a-z-]+-url>", "127.0.0.1:8", text)
    data = tomllib.loads(text)
    for entry in data.get("files", []):
        source = directory / entry["source"]
        if entry["source"].endswith("/"):
            source.mkdir(parents=True)
        else:
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_text("x\n")
    for repo in data.get("repositories", []):
        (directory / repo["keyring"]).write_text("key\n")
    path = directory / "example.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("title", "text"), _readme_recipes(), ids=lambda v: v if "\n" not in v else "")
def test_every_readme_recipe_reads_back_from_its_record(tmp_path: Path, title: str, text: str) -> None:
    r = load(str(_materialize(tmp_path, text)))
    round_trips(r)
    assert r.files or r.repositories, "the README's examples bring local files"


def test_the_readme_has_recipes() -> None:
    assert {t for t, _ in _readme_recipes()} >= {"python-app.toml", "company-base.toml", "my-base.toml"}


def _every_key_set(directory: Path, parent: str = "debian-slim", family: str = "deb") -> Path:
    """`bootstrap new`'s recipe with every example uncommented: each key of the table its family reads set."""
    lines = []
    for line in template(parent, family).splitlines():
        if line.startswith("# [[") or (line.startswith("# ") and " = " in line):
            line = line[2:].split("  # ")[0]
        elif line.startswith("["):
            line = line.split("  # ")[0]
        lines.append(line)
    # Values other than the defaults, so that each is recorded (scripts = false would refuse the hooks).
    text = (
        "\n".join(lines)
        .replace("default = false", "default = true")
        .replace("annotations = {}", 'annotations = { a = "b" }')
        .replace('distribution = "debian"', f'distribution = "{"debian" if family == "deb" else "almalinux"}"')
    )
    data = tomllib.loads(text)
    keyrings = [r["keyring"] for r in data.get("repositories", [])]
    for path in (data["files"][0]["source"], *keyrings, data["archive"]["keyring"]):
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text("x\n")
    path = directory / "every.toml"
    path.write_text(text)
    return path


def _keys(data: dict[str, Any], schema: dict[str, Setting] | Any = SCHEMA, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        spec = schema[key]
        out.add(prefix + key)
        if spec.kind == "table":
            out |= _keys(value, spec.sub, prefix + key + ".")
        elif spec.kind == "tables":
            for entry in value:
                out |= _keys(entry, spec.sub, prefix + key + ".")
    return out


@pytest.mark.parametrize(("parent", "family"), [("debian-slim", "deb"), ("almalinux", "rpm")])
def test_a_recipe_with_every_key_set_reads_back_and_records_every_key(tmp_path: Path, parent: str, family: str) -> None:
    r = load(str(_every_key_set(tmp_path, parent, family)))
    round_trips(r)
    recorded = r.as_dict()
    recorded.pop("name")
    every = {s.key for s in settings.SETTINGS if s.family in ("", family)} - {"extends", "scripts"}
    assert _keys(recorded) == every, "as_dict leaves out a key that is set"


@pytest.mark.parametrize(
    ("parent", "body", "key"),
    [
        ("almalinux", 'components = ["main", "contrib"]\n', "components"),
        ("almalinux", '[filters]\npath-exclude = ["/usr/share/doc/*"]\n', "filters.path-exclude"),
        ("rockylinux", "[packages]\nessential = false\n", "packages.essential"),
        ("debian-slim", "[rpm]\nnodocs = false\n", "rpm.nodocs"),
        ("debian-slim", '[packages]\ngroups = ["core"]\n', "packages.groups"),
    ],
)
def test_a_key_the_family_does_not_read_is_refused(tmp_path: Path, parent: str, body: str, key: str) -> None:
    """Set for a distribution whose family would ignore it: one line naming the key, not a silent no-op."""
    path = tmp_path / "r.toml"
    path.write_text(f'extends = "{parent}"\n{body}')
    with pytest.raises(RecipeError, match=rf"{re.escape(key)} is not read when building"):
        load(str(path), given=True)


def test_records_hold_only_the_familys_keys() -> None:
    alma, slim = load("almalinux").as_dict(), load("debian-slim").as_dict()
    assert "components" not in alma and not {"priorities", "essential"} & set(alma["packages"])
    assert "rpm" in alma and "rpm" not in slim and "components" in slim


def test_the_recipe_attributes_are_the_tables() -> None:
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    assert sorted(settings.attributes()) == sorted(set(fields) - {"name", "source"})
    for spec in SCHEMA.values():
        if spec.kind == "tables":
            assert spec.entry is not None
            entry_fields = {f.name: f for f in dataclasses.fields(spec.entry)}
            assert settings.attributes(spec.sub) == list(entry_fields), spec.key
            for sub in spec.sub.values():
                declared = entry_fields[sub.attribute].default
                if declared is not dataclasses.MISSING:
                    assert settings._read(sub, sub.default) == declared, sub.key
    defaults = settings.values({}, name="x")
    for name, value in defaults.items():
        if fields[name].default is not dataclasses.MISSING:
            assert fields[name].default == value, name


def test_an_absent_key_takes_the_tables_default() -> None:
    r = from_data({}, "plain", "test")
    assert (r.suite, r.components, r.env, r.tag, r.essential) == (
        "stable",
        ("main",),
        (recipe.DEFAULT_PATH,),
        "plain:{codename}",
        True,
    )


def test_the_readme_key_table_is_the_generated_one() -> None:
    start = README.index("| key | type |")
    end = README.index("\n\n", start)
    assert README[start : end + 1] == readme_table(), "regenerate it: python -c 'from bootstrap.build.recipe_schema "
    "import readme_table; print(readme_table())'"
