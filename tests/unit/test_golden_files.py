"""The golden-file rule (tests/golden_files.py): compared unless DYNIA_UPDATE_GOLDEN=1 exactly,
and a rewrite always fails the test that made it."""
from __future__ import annotations

import pytest

from ..golden_files import check_text, check_tree


def test_an_update_rewrites_the_golden_file_and_fails_the_test(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNIA_UPDATE_GOLDEN", "1")
    golden = tmp_path / "golden" / "a.txt"
    golden.parent.mkdir()
    golden.write_text("old\n")
    with pytest.raises(pytest.fail.Exception, match="rewritten"):
        check_text(golden, "new\n", "a")
    assert golden.read_text() == "new\n"
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "f").write_text("rendered\n")
    with pytest.raises(pytest.fail.Exception, match="rewritten"):
        check_tree(tmp_path / "golden" / "tree", out, "render")
    assert (tmp_path / "golden" / "tree" / "d" / "f").read_text() == "rendered\n"
    with pytest.raises(pytest.fail.Exception, match="rewritten"):   # even when nothing changed
        check_text(golden, "new\n", "a")


@pytest.mark.parametrize("value", [None, "", "0", "true", "yes", "1 "])
def test_without_exactly_1_a_difference_fails_and_nothing_is_rewritten(tmp_path, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("DYNIA_UPDATE_GOLDEN", raising=False)
    else:
        monkeypatch.setenv("DYNIA_UPDATE_GOLDEN", value)
    golden = tmp_path / "a.txt"
    golden.write_text("old\n")
    check_text(golden, "old\n", "a")
    with pytest.raises(AssertionError, match="a changed; review, then rerun with DYNIA_UPDATE_GOLDEN=1"):
        check_text(golden, "new\n", "a")
    assert golden.read_text() == "old\n"
    out, kept = tmp_path / "out", tmp_path / "kept"
    out.mkdir()
    kept.mkdir()
    (out / "f").write_text("new\n")
    (kept / "f").write_text("old\n")
    with pytest.raises(AssertionError, match="render changed"):
        check_tree(kept, out, "render")
    assert (kept / "f").read_text() == "old\n"
    with pytest.raises(AssertionError, match="missing"):
        check_text(tmp_path / "never-written.txt", "x", "a")
