"""The one rule of the VIP (dynia.nodes.vip): exactly one MASTER, and it is the holder."""
from dynia.nodes import vip


def test_one_master_that_holds_the_reserved_ip_keeps_the_rule():
    roles = {"a": "MASTER", "b": "BACKUP"}
    assert vip.kept("a", roles) and vip.sole_master(roles) == "a" and not vip.split(roles)


def test_a_backup_holding_the_reserved_ip_breaks_the_rule():
    assert not vip.kept("b", {"a": "MASTER", "b": "BACKUP"})


def test_no_holder_breaks_the_rule_even_with_one_master():
    assert not vip.kept(None, {"a": "MASTER", "b": "BACKUP"})


def test_two_masters_are_a_split_brain_with_no_sole_master_even_if_one_holds():
    roles = {"b": "MASTER", "a": "MASTER", "c": None}
    assert vip.split(roles) and vip.sole_master(roles) is None and not vip.kept("a", roles)
    assert vip.masters(roles) == ["a", "b"]


def test_no_master_has_no_sole_master():
    assert vip.sole_master({"a": "BACKUP", "b": None}) is None and vip.masters({}) == []
