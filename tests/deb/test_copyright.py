"""DEP-5 copyright files read through python-debian's deb822 paragraphs: what an SBOM takes from them."""

from bootstrap.deb import copyright

DEP5 = """Format: https://example.org/copyright-format/1.0/
Upstream-Name: thing
Copyright: 2001 Header Holder

Files: *
Copyright: 1999-2004 First Holder <first@example.org>
           2010 Second Holder
License: GPL-2+ or Artistic
 This program is free software;
 .
 you can redistribute it.

Files: lib/*
Copyright:
 2005 Third Holder
 .
 1999-2004 First Holder <first@example.org>
License: LGPL-2.1+ with OpenSSL exception

License: Artistic
 The "Artistic License"
"""


def test_notices_in_order_once() -> None:
    assert copyright.notices_in(DEP5).splitlines() == [
        "2001 Header Holder",
        "1999-2004 First Holder <first@example.org>",
        "2010 Second Holder",
        "2005 Third Holder",
    ]


def test_licences_from_the_synopses_only() -> None:
    assert copyright._licenses_in(DEP5) == ["Artistic", "GPL-2+", "LGPL-2.1+", "OpenSSL"]


def test_a_free_form_file_names_no_licence() -> None:
    text = "This is thing, packaged by someone.\n\nCopyright (C) 2003 Some One\nLicense: GPL\n"
    assert copyright._licenses_in(text) == []
    assert copyright.notices_in(text) == "Copyright (C) 2003 Some One"
