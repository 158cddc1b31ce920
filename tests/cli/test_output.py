"""say()/next_step(): user text is printed as given, never read as Rich markup."""
from __future__ import annotations

import pytest

from dynia.cli.common import next_step, say


@pytest.mark.parametrize("text", ["[/x]", "proj[red]old", "[bold]api[/]", "a :smile: b", "[link=http://x]y"])
def test_say_prints_user_text_verbatim(capsys, text):
    say(f"added service {text}")
    next_step(f"dynia plan --cluster {text}")
    assert capsys.readouterr().out == f"added service {text}\nnext: dynia plan --cluster {text}\n"


def test_say_styles_only_the_parts_given_a_style(capsys):
    say("[/x]", ("  (from DYNIA_CLUSTER)", "dim"))
    assert capsys.readouterr().out == "[/x]  (from DYNIA_CLUSTER)\n"
