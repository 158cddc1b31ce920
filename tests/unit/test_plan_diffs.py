"""Plan content diffs: the last applied bytes kept in the cache, line diffs per node in the
terminal, Markdown and JSON, identical changes shown once, secrets never shown."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from dynia.state.cache import CONTENT_DIR, ClusterCache
from dynia.errors import DyniaError
from dynia.render.rendered import render_cluster
from dynia.state.store import Project
from dynia.spec.load import load_cluster

from ..golden_files import check_text

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "plan"
COMPOSE = "/opt/dynia/compose/api/docker-compose.yml"


def _apply(project: Path, name: str = "shop", rendering=True):
    """What the engine records after a full apply: the manifest, and (through the same
    ClusterCache method) the contents and the slots of the rendering it pushed."""
    c = load_cluster(Project(project), name)
    r = render_cluster(c)
    ClusterCache.of(c).write_applied({"configVersion": r.config_version, "contentHash": r.content_hash,
                                      "nodes": {n: r.manifest(n) for n in r.files}},
                                     rendering=r if rendering else None)
    return c, r


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _golden(name: str, text: str) -> None:
    check_text(GOLDEN / name, text, "plan markdown")


def test_markdown_after_a_one_line_compose_change_shows_that_line_once_with_its_nodes(project, cli):
    _apply(project)
    _edit(project / "services/api.yml", "LOG_LEVEL: info", "LOG_LEVEL: debug")
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--format", "markdown")
    assert r.code == 0, r.err
    _golden("shop-compose-one-line.md", r.out)
    assert r.out.count("-      LOG_LEVEL: info\n+      LOG_LEVEL: debug\n") == 1
    changed = [ln for ln in r.out.splitlines() if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
    assert changed == ["-      LOG_LEVEL: info", "+      LOG_LEVEL: debug"]
    assert f"`{COMPOSE}` — on `brave-panda`, `misty-owl`" in r.out
    assert f"`{COMPOSE}`: the same change as shown for `brave-panda`." in r.out
    assert r.out.count("<details>") == 2 and r.out.count("</details>") == 2


def test_json_carries_the_whole_diff_of_every_changed_file_on_every_node(project, cli):
    _apply(project)
    _edit(project / "services/api.yml", "LOG_LEVEL: info", "LOG_LEVEL: debug")
    plan = json.loads(cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json").out)
    for n in plan["nodes"]:
        (c,) = n["changes"]
        assert c["path"] == COMPOSE and c["diffNote"] is None and c["secret"] is False
        assert c["diff"].startswith(f"--- a{COMPOSE}\n+++ b{COMPOSE}\n@@ ")
        assert "-      LOG_LEVEL: info\n+      LOG_LEVEL: debug\n" in c["diff"]


def test_terminal_diff_is_coloured_text_and_file_content_is_never_rich_markup(project, cli, monkeypatch):
    from rich.console import Console

    from dynia.cli import common

    _apply(project)
    # Rich would read "[/x]" as a closing tag (and raise) and "[bold]" as a style.
    _edit(project / "services/api.yml", "LOG_LEVEL: info", 'LOG_LEVEL: "[bold]x[/x]"')
    con = Console(force_terminal=True, color_system="standard", width=200, highlight=False)
    monkeypatch.setattr(common, "_console", con)
    with con.capture() as cap:
        r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop")
    assert r.code == 0, r.err
    out = cap.get()
    assert "\x1b[32m+      LOG_LEVEL: '[bold]x[/x]'" in out  # green, and the brackets kept
    assert "\x1b[31m-      LOG_LEVEL: info" in out
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert plain.count("-      LOG_LEVEL: info") == 1  # shown once, for the first node
    assert f"{COMPOSE}: the same change as on brave-panda" in plain


def test_without_recorded_content_the_plan_says_so_instead_of_inventing_a_diff(project, cli):
    _apply(project, rendering=False)  # an apply recorded before contents were kept
    _edit(project / "services/api.yml", "LOG_LEVEL: info", "LOG_LEVEL: debug")
    plan = json.loads(cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json").out)
    for n in plan["nodes"]:
        (c,) = n["changes"]
        assert c["diff"] is None and c["diffNote"] == "no previous content recorded"
    md = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--format", "markdown").out
    assert f"`{COMPOSE}`: no previous content recorded." in md and "```diff" not in md


def test_first_plan_records_no_previous_content_for_any_file(project, cli):
    plan = json.loads(cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json").out)
    notes = {c["diffNote"] for n in plan["nodes"] for c in n["changes"]}
    assert notes == {"no previous content recorded"}
    assert all(c["diff"] is None for n in plan["nodes"] for c in n["changes"])


def test_a_file_removed_after_an_apply_is_shown_as_its_removed_lines(project, cli):
    _apply(project)
    spec = project / "clusters/shop.yaml"
    # the admin service leaves: its compose file and route go from every node
    text = spec.read_text()
    spec.write_text(text[:text.index("  admin:\n")])
    plan = json.loads(cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json").out)
    n = {c["path"]: c for c in plan["nodes"][0]["changes"]}
    route = n["/etc/caddy/routes/admin.caddy"]
    assert route["op"] == "remove" and route["diff"].startswith("--- a/etc/caddy/routes/admin.caddy\n+++ /dev/null\n")
    assert all(ln.startswith(("-", "@@", "+++")) for ln in route["diff"].splitlines())


def test_content_store_keeps_each_distinct_content_once_and_only_what_is_applied(project):
    c, r = _apply(project)
    store = ClusterCache.of(c).dir / CONTENT_DIR
    distinct = {f.sha256 for fs in r.files.values() for f in fs}
    total = sum(len(fs) for fs in r.files.values())
    assert {p.name for p in store.iterdir()} == distinct and len(distinct) < total  # compose files are shared
    for p in store.iterdir():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name and (p.stat().st_mode & 0o777) == 0o600
    old_compose = next(f.sha256 for f in r.files["misty-owl"] if f.target == COMPOSE)
    _edit(project / "services/api.yml", "LOG_LEVEL: info", "LOG_LEVEL: debug")
    c, r = _apply(project)
    names = {p.name for p in store.iterdir()}
    assert old_compose not in names and names == {f.sha256 for fs in r.files.values() for f in fs}


def test_a_layer_not_pushed_keeps_its_previous_contents(project):
    """up --phase infra after an apps change: the service layer on the nodes is the old one."""
    c, r = _apply(project)
    old_manifest = {n: r.manifest(n) for n in r.files}
    _edit(project / "services/api.yml", "LOG_LEVEL: info", "LOG_LEVEL: debug")
    c2 = load_cluster(Project(project), "shop")
    r2 = render_cluster(c2)
    merged = {n: {t: (e if e["layer"] == "infra" else old_manifest[n][t]) for t, e in r2.manifest(n).items()}
              for n in r2.files}
    ClusterCache.of(c2).write_applied({"configVersion": 2, "contentHash": None, "nodes": merged}, rendering=r2)
    cache = ClusterCache.of(c2)
    assert cache.read_content(old_manifest["misty-owl"][COMPOSE]["sha256"]) is not None
    assert cache.read_content(r2.manifest("misty-owl")[COMPOSE]["sha256"]) is None


def test_a_content_file_that_does_not_match_its_name_is_a_state_error(project):
    c, r = _apply(project)
    cache = ClusterCache.of(c)
    sha = r.manifest("misty-owl")[COMPOSE]["sha256"]
    (cache.dir / CONTENT_DIR / sha).write_bytes(b"services: {}\n")
    with pytest.raises(DyniaError) as exc:
        cache.read_content(sha)
    assert exc.value.kind == "state" and "corrupt" in exc.value.message and "content" in exc.value.hint
    assert cache.read_content("../applied.json") is None  # only a sha256 names a content file


def test_a_symlinked_content_file_is_refused_not_followed(project, tmp_path):
    c, r = _apply(project)
    cache = ClusterCache.of(c)
    sha = r.manifest("misty-owl")[COMPOSE]["sha256"]
    target = tmp_path / "elsewhere"
    target.write_bytes((cache.dir / CONTENT_DIR / sha).read_bytes())
    (cache.dir / CONTENT_DIR / sha).unlink()
    (cache.dir / CONTENT_DIR / sha).symlink_to(target)
    with pytest.raises(DyniaError) as exc:
        cache.read_content(sha)
    assert exc.value.kind == "state"


def test_a_symlinked_content_folder_is_refused_and_nothing_it_points_at_is_touched(project, tmp_path):
    c, r = _apply(project)
    cache = ClusterCache.of(c)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "important").write_text("keep\n")
    folder = cache.dir / CONTENT_DIR
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    folder.symlink_to(victim)
    with pytest.raises(DyniaError) as exc:
        ClusterCache.of(c).write_applied({"configVersion": 1, "contentHash": r.content_hash,
                                          "nodes": {n: r.manifest(n) for n in r.files}}, rendering=r)
    assert exc.value.kind == "state" and "symlink" in exc.value.message
    assert [p.name for p in victim.iterdir()] == ["important"], "nothing deleted or written through the link"


def test_markdown_cuts_a_long_diff_with_a_note_and_no_content_can_close_the_code_block(project, cli):
    _apply(project)
    api = project / "services/api.yml"
    lines = "".join(f"      VAR_{i}: value-{i}\n" for i in range(200))
    _edit(api, "      LOG_LEVEL: info\n", "      LOG_LEVEL: info\n      FENCE: '````'\n" + lines)
    r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--format", "markdown")
    assert r.code == 0, r.err
    assert "*(cut: " in r.out and "`dynia plan --json` has the whole diff)*" in r.out
    assert "`````diff" in r.out  # a fence longer than the four backticks in the content
    assert "+      VAR_199: value-199" not in r.out
    full = json.loads(cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json").out)
    assert "+      VAR_199: value-199" in full["nodes"][0]["changes"][0]["diff"]


SECRETS = {"stats_user": "stats-SECRETUSER", "stats_password": "SECRETPASSWORD0123456789abcdef"}
TOKENS = {"DIGITALOCEAN_TOKEN": "dop_v1_SECRETDOTOKEN0123456789", "CLOUDFLARE_API_TOKEN": "SECRETCFTOKEN0123456789"}
PEM = "-----BEGIN PRIVATE KEY-----\nSECRETPEMKEYMATERIAL0123456789\n-----END PRIVATE KEY-----\n"


def _fill_secrets(project: Path) -> list[str]:
    secrets = project / ".dynia/secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "shop.json").write_text(json.dumps(SECRETS))
    (secrets / "shop.origin.pem").write_text(PEM)
    values = [*SECRETS.values(), *TOKENS.values(), "SECRETPEMKEYMATERIAL0123456789"]
    hashes = [hashlib.sha256(v.encode()).hexdigest() for v in [*SECRETS.values(), *TOKENS.values(), PEM]]
    return values + hashes + [h[:8] for h in hashes]


def test_no_secret_value_or_hash_of_one_appears_in_any_plan_output(project, cli):
    forbidden = _fill_secrets(project)
    _apply(project)
    # a slot now filled by another secret, a slot the record did not have, and a changed file
    cache = project / ".dynia/cache/shop/applied.json"
    applied = json.loads(cache.read_text())
    applied["slots"]["misty-owl"]["/etc/haproxy/certs/origin.pem"]["secret"] = "stats_credentials"
    del applied["slots"]["brave-panda"]["/etc/default/haproxy"]
    cache.write_text(json.dumps(applied))
    _edit(project / "services/api.yml", "LOG_LEVEL: info", "LOG_LEVEL: debug")
    outputs = []
    for fmt in (["--json"], ["--format", "markdown"], []):
        r = cli("-C", str(project), "plan", "--offline", "--cluster", "shop", *fmt, env=TOKENS)
        assert r.code == 0, r.err
        outputs.append(r.out + r.err)
    plan = json.loads(outputs[0])
    rows = {(n["node"], c["path"]): c for n in plan["nodes"] for c in n["changes"]}
    pem = rows[("misty-owl", "/etc/haproxy/certs/origin.pem")]
    assert pem["diffNote"] == "secret changed" and pem["diff"] is None and pem["secret"] is True
    assert pem["oldSha256"] is None and pem["newSha256"] is None
    assert rows[("brave-panda", "/etc/default/haproxy")]["op"] == "add"
    assert "/etc/haproxy/certs/origin.pem (secret changed)" in outputs[1]
    assert "secret changed" in outputs[2]
    for text in outputs:
        for value in forbidden:
            assert value not in text
    # and nothing secret was ever written to the content store
    for p in (project / ".dynia/cache/shop" / CONTENT_DIR).iterdir():
        data = p.read_text()
        assert not any(v in data for v in forbidden)


def test_an_older_applied_record_without_slots_claims_no_slot_change(project, cli):
    _apply(project, rendering=False)
    plan = json.loads(cli("-C", str(project), "plan", "--offline", "--cluster", "shop", "--json").out)
    assert plan["pending"] == 0 and "slots" not in json.loads(
        (project / ".dynia/cache/shop/applied.json").read_text())
