"""Redaction of hostile input: linear in its length, the same masks (docs/RELIABILITY.md row 65).

A regex that scans from each position of a long token to the token's end is quadratic: a 100 KB
argument took over a minute of CPU in ``da-sources``. The time limit below is a hang guard, 60x
what the linear code needs on a loaded machine; the quadratic code needs hours for these inputs.
"""

from __future__ import annotations

import pytest

from connectors.secrets.references import MASK, redact

HOSTILE_UNITS = ["a", "a:;", "a.", "s://", "a:/", "a:b@", "%41", "x=", "sig=a&", "password", "'\\a", "[.:",
                 "a:\\", ":s://s://", "Authorization:", "?token=-"]


@pytest.mark.timeout(60)
def test_redaction_of_hostile_long_words_is_linear() -> None:
    for unit in HOSTILE_UNITS:
        text = unit * (1_000_000 // len(unit))
        assert len(redact(text)) > 0, unit


@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql://app:hunter2@db/x?sslmode=require", f"postgresql://app:{MASK}@db/x?sslmode=require"),
    ("https://u:p@ss@host/a@b c", f"https://u:{MASK}@b c"),  # up to the token's last '@'
    ("+http://http://@::1]", f"+http://http:{MASK}@::1]"),  # a scheme after '+' starts at a word boundary
    ("s://s://u:p@x", f"s://s:{MASK}@x"),
    ("://;http://1s://@h", f"://;http://1s:{MASK}@h"),  # a token starting with '://' is searched on
    ("dsn=postgresql://u:pa:ss@h", f"dsn=postgresql://u:{MASK}@h"),
    ("user:pw@db.internal", f"user:{MASK}@db.internal"),
    ("a;user:pw@db", f"a;user:{MASK}@db"),
    ("user:p:w@[::1]", f"user:{MASK}@[::1]"),
    ("host=a user:pw@db:5432 x", f"host=a user:{MASK}@db:5432 x"),
    ("u:p@ h", "u:p@ h"),  # no host after the '@'
    ("x/u:p@h", "x/u:p@h"),  # a path, not a host
    ("user:@h", "user:@h"),  # no password
])
def test_userinfo_masks_are_those_of_the_single_regexes(text: str, expected: str) -> None:
    assert redact(text) == expected
