"""Numbers in someone else's text: ASCII digits only, so that nothing `isdigit` takes reaches `int` and raises."""

import pytest

from bootstrap.numbers import is_decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", True), ("1700000000", True), (b"4096", True), ("", False), ("-1", False), (" 1", False), ("1.0", False)]
    + [("\u00b2", False), ("1\u00b2", False), ("\u0663", False), (b"\xb2", False), ("\uff11", False)],
    ids=lambda v: repr(v),
)
def test_only_ascii_digits_are_a_number(text: str | bytes, expected: bool) -> None:
    assert is_decimal(text) is expected
    if expected:
        assert int(text) >= 0


def test_a_digit_that_isdigit_takes_but_int_refuses() -> None:
    """What the check is for: "²" passes `str.isdigit`, and `int` refuses it."""
    assert "\u00b2".isdigit()
    with pytest.raises(ValueError):
        int("\u00b2")
    assert not is_decimal("\u00b2")
