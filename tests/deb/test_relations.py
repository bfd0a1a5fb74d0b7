"""Relationship fields and dpkg version comparison."""

import pytest

from bootstrap.deb.relations import Relation, parse, version_satisfies


def test_groups_and_alternatives() -> None:
    assert parse("libc6 (>= 2.36), debconf | debconf-2.0, zlib1g") == (
        (Relation("libc6", "", ">=", "2.36"),),
        (Relation("debconf"), Relation("debconf-2.0")),
        (Relation("zlib1g"),),
    )


def test_empty_field_and_empty_items() -> None:
    assert parse("") == ()
    assert parse(" , a ,, ") == ((Relation("a"),),)


def test_qualifiers() -> None:
    assert parse("perl:any, libfoo:amd64 (= 1), python3:native") == (
        (Relation("perl", "any"),),
        (Relation("libfoo", "amd64", "=", "1"),),
        (Relation("python3", "native"),),
    )


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("a (<< 1)", "<<"),
        ("a (<= 1)", "<="),
        ("a (= 1)", "="),
        ("a (>= 1)", ">="),
        ("a (>> 1)", ">>"),
        # the obsolete one-character forms mean <= and >=
        ("a (< 1)", "<="),
        ("a (> 1)", ">="),
    ],
)
def test_operators(text: str, op: str) -> None:
    assert parse(text) == ((Relation("a", "", op, "1"),),)


def test_whitespace_and_continuation_lines() -> None:
    field = "libc6(>=2.36),\n libgcc-s1 ( >= 3.0 ) ,\n\tlibstdc++6"
    assert parse(field) == (
        (Relation("libc6", "", ">=", "2.36"),),
        (Relation("libgcc-s1", "", ">=", "3.0"),),
        (Relation("libstdc++6"),),
    )


def test_architecture_restrictions_and_build_profiles_are_dropped() -> None:
    assert parse("foo [amd64 arm64] <!nocheck> <stage1>, bar (>= 1:2.0~rc1-3) [!i386]") == (
        (Relation("foo"),),
        (Relation("bar", "", ">=", "1:2.0~rc1-3"),),
    )


@pytest.mark.parametrize("bad", ["Foo", "a (=> 1)", "a ()", "a b", "-a", "a (>= 1", "a:"])
def test_malformed_relations(bad: str) -> None:
    with pytest.raises(ValueError, match="malformed relation"):
        parse(bad)


def test_str_round_trips() -> None:
    text = "perl:any (>= 5.36) | perl-base"
    (group,) = parse(text)
    assert " | ".join(str(r) for r in group) == text


@pytest.mark.parametrize(
    ("version", "op", "wanted", "holds"),
    [
        ("1.0", "", "", True),
        ("1.0", "=", "1.0", True),
        ("1.0", "=", "1.0-0", True),
        ("1.0", "=", "1.00", True),
        ("1.0-1", "=", "1.0", False),
        ("2.0", ">>", "1.9", True),
        ("2.0", ">>", "2.0", False),
        ("2.0", ">=", "2.0", True),
        ("2.0~rc1", "<<", "2.0", True),
        ("2.0~rc1", ">=", "2.0~beta", True),
        ("2.0+deb12u1", ">>", "2.0", True),
        ("1:0.1", ">>", "9.9", True),
        ("0:9.9", "=", "9.9", True),
        ("1.10", ">>", "1.9", True),
        ("1.0a", ">>", "1.0", True),
        ("1.0-2", "<<", "1.0-10", True),
        ("1.0", "<=", "1.0", True),
        ("1.1", "<=", "1.0", False),
    ],
)
def test_version_satisfies(version: str, op: str, wanted: str, holds: bool) -> None:
    assert version_satisfies(version, op, wanted) is holds
