"""Install order, one rule for both families (`bootstrap.family.order`): dependencies first, cycles broken where
they are met, and no chain of dependencies too long for it (an index may list thousands, one after the other)."""

from bootstrap.family.order import depth_first
from bootstrap.rpm import tags
from bootstrap.rpm.header import STRING_ARRAY, Header
from bootstrap.rpm.order import install_order


def test_dependencies_first_cycles_broken_where_met() -> None:
    needs = {"a": ["b", "c"], "b": ["c", "a"], "c": [], "d": ["d", "x"], "x": []}
    assert depth_first(["a", "d", "c"], lambda n: needs[n]) == ["c", "b", "a", "x", "d"]


def test_a_chain_of_twenty_thousand() -> None:
    count = 20_000
    order = depth_first(["n0"], lambda n: [f"n{int(n[1:]) + 1}"] if int(n[1:]) < count - 1 else [])
    assert order == [f"n{i}" for i in reversed(range(count))]


def _header(provides: list[str], requires: list[str]) -> Header:
    data, index = b"", {}
    for tag, values in ((tags.PROVIDENAME, provides), (tags.REQUIRENAME, requires)):
        index[tag] = (STRING_ARRAY, len(data), len(values))
        data += b"".join(v.encode() + b"\0" for v in values)
    return Header(0, 0, index, data, "test")


def test_rpm_packages_in_a_chain_of_three_thousand_requirements() -> None:
    """Each package requires the next by a provide, a file or a rich expression: ordered, last first."""
    count = 3000
    headers, files = {}, {}
    for i in range(count):
        nxt = i + 1
        kind = i % 3
        require = [f"cap{nxt}", f"/usr/lib/f{nxt}", f"(p{nxt} or absent)"][kind] if nxt < count else "rpmlib(X)"
        headers[f"p{i}"] = _header([f"cap{i}"], [require])
        files[f"p{i}"] = [f"/usr/lib/f{i}"]
    assert install_order(headers, files) == [f"p{i}" for i in reversed(range(count))]
