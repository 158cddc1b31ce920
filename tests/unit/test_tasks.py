"""One-off tasks, release commands and maintenance, without nodes: the spec keys, the spec edit,
which release is pending, the record's checks, the streamed lines, the 503 page, plan and status."""
from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from dynia.errors import DyniaError
from dynia.spec.load import load_cluster
from dynia.state.store import Project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def shop(tmp_path) -> Project:
    shutil.copytree(REPO / "examples", tmp_path / "proj", ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    return Project(tmp_path / "proj")


def _with(project: Project, service: str, block: str) -> None:
    path = project.spec_path("shop")
    anchor = f"  {service}:\n    compose: services/{service}.yml\n"
    text = path.read_text()
    assert anchor in text
    path.write_text(text.replace(anchor, anchor + block))


@pytest.mark.parametrize("block,needle", [
    ("    release_command: []\n", "a command of 1 to 64 words"),
    ("    release_command: [\"sh\", \"-c\", \"a\\nb\"]\n", "printable characters"),
    ("    release_command: \"rake db:migrate\"\n", "valid list"),
    ("    maintenance: {message: \"a\\u001b[2Jb\"}\n", "printable characters on one line"),
    ("    maintenance: {retry_after: 1.5s}\n", "whole seconds"),
    ("    maintenance: {retry_after: 25h}\n", "from 1s to 24h"),
])
def test_release_command_and_maintenance_values_are_refused_where_a_node_or_a_page_could_not_take_them(
        shop, block, needle):
    _with(shop, "api", block)
    with pytest.raises(DyniaError) as err:
        load_cluster(shop, "shop")
    assert err.value.kind == "config" and needle in err.value.message, err.value.message
    assert "services.api." in err.value.message


def test_maintenance_on_a_service_without_a_domain_is_refused(shop):
    path = shop.spec_path("shop")
    path.write_text(path.read_text().replace("    domain: api.example.com\n", "") + "")
    _with(shop, "api", "    maintenance: {}\n")
    with pytest.raises(DyniaError) as err:
        load_cluster(shop, "shop")
    assert "serves no domain" in err.value.message


def test_maintenance_on_edits_only_the_named_services_keeping_comments_and_off_removes_it(shop):
    from dynia.spec.editing import set_maintenance

    path = shop.spec_path("shop")
    path.write_text("# the shop\n" + path.read_text())
    assert set_maintenance(shop, "shop", ["api"], "Back at 5", on=True) == ["api"]
    spec = load_cluster(shop, "shop").spec
    assert spec.services["api"].maintenance.message == "Back at 5"
    assert spec.services["api"].maintenance.retry_after == 300
    assert spec.services["web"].maintenance is None and path.read_text().startswith("# the shop\n")
    # on again without a message keeps the one it has; no name: every service with a domain
    names = set_maintenance(shop, "shop", [], None, on=True)
    spec = load_cluster(shop, "shop").spec
    assert set(names) == {s for s, svc in spec.services.items() if svc.domains}
    assert spec.services["api"].maintenance.message == "Back at 5"
    assert spec.services["web"].maintenance.message.startswith("This site is down")
    set_maintenance(shop, "shop", [], None, on=False)
    assert all(s.maintenance is None for s in load_cluster(shop, "shop").spec.services.values())
    assert "maintenance" not in path.read_text()


def test_maintenance_of_an_unknown_service_is_refused_and_the_spec_is_byte_identical(shop):
    from dynia.spec.editing import set_maintenance

    before = shop.spec_path("shop").read_bytes()
    with pytest.raises(DyniaError) as err:
        set_maintenance(shop, "shop", ["nope"], None, on=True)
    assert err.value.kind == "config" and "nope" in err.value.message
    assert shop.spec_path("shop").read_bytes() == before


def test_the_page_is_ascii_with_no_quote_variable_or_escape_haproxy_could_read():
    from dynia.render.rendering import maintenance_page

    page = maintenance_page("it's <b>\"down\"</b> ${HOME} \\ déjà 🙂", 60.0)
    assert page.retry_after == 60 and page.page.isascii()
    for bad in ("'", "$", "\\", "<b>", '"down"'):
        assert bad not in page.page
    assert "it&#x27;s &lt;b&gt;&quot;down&quot;&lt;/b&gt; &#36;{HOME} &#92; d&#233;j&#224; &#128578;" in page.page


def test_the_rendered_backend_of_a_service_in_maintenance_returns_503_and_no_other_does(shop):
    from dynia.render.rendered import render_cluster

    _with(shop, "api", "    maintenance: {message: Soon, retry_after: 2m}\n")
    rendering = render_cluster(load_cluster(shop, "shop"))
    cfg = next(f for f in rendering.files["misty-owl"] if f.target == "/etc/haproxy/haproxy.cfg").content.decode()
    blocks = {b.split()[0]: b for b in cfg.split("\nbackend ")[1:]}
    assert [name for name, b in blocks.items() if "http-request return status 503" in b] == ["be_api"]
    assert "hdr Retry-After 120" in blocks["be_api"] and "<p>Soon</p>" in blocks["be_api"]
    assert "option httpchk" in blocks["be_api"]   # still checked


def test_plan_names_a_service_in_maintenance_first_and_status_carries_it(shop):
    from dynia.operations import status
    from dynia.spec import compose

    _with(shop, "api", "    maintenance: {}\n")
    c = load_cluster(shop, "shop")
    notices = compose.notices(c.spec, c.compose)
    assert notices[0]["kind"] == "maintenance" and "api.example.com" in notices[0]["text"]
    st = status.assemble(cluster="shop", nodes={}, services={"api": "all", "web": "all"}, desired_version=1,
                         reserved_ip="203.0.113.5", answers={}, holder=None, maintenance={"api": "Soon"})
    assert {s.service: s.maintenance for s in st.services} == {"api": "Soon", "web": None}
    assert json.loads(json.dumps(st.as_dict()))["services"][0]["maintenance"] == "Soon"


def _applied(rendering, node: str, service: str, sha: str | None) -> dict:
    path = f"/opt/dynia/compose/{service}/docker-compose.yml"
    return {"layers": {f"service:{service}": {path: {"sha256": sha}}}} if sha else {"layers": {}}


def test_a_release_is_pending_where_the_node_it_runs_on_has_not_applied_the_new_compose_file(shop):
    from dynia.operations.oneoff import compose_of
    from dynia.operations.release import pending
    from dynia.render.rendered import render_cluster

    _with(shop, "api", "    release_command: [bin/migrate]\n")
    _with(shop, "admin", "    release_command: [bin/admin-migrate]\n")
    c = load_cluster(shop, "shop")
    rendering = render_cluster(c, holder="misty-owl")
    first = rendering.rolling_order[0]
    assert first == "brave-panda"
    new = {s: compose_of(rendering, first, s).sha256 for s in ("api", "admin")}
    # nothing applied anywhere: api on the first node of the roll, admin (active-only) on the holder
    assert pending(c, rendering, "misty-owl", {}) == [("admin", "misty-owl"), ("api", "brave-panda")]
    applied = {"brave-panda": _applied(rendering, first, "api", new["api"]),
               "misty-owl": _applied(rendering, "misty-owl", "admin", compose_of(rendering, "misty-owl", "admin").sha256)}
    assert pending(c, rendering, "misty-owl", applied) == []
    applied["brave-panda"] = _applied(rendering, first, "api", "0" * 64)   # an older release there
    assert pending(c, rendering, "misty-owl", applied) == [("api", "brave-panda")]


def test_a_damaged_runs_record_is_a_state_error_and_a_good_one_reads_back():
    from dynia.engine.records import RunRecord, _checked

    good = RunRecord(time="2026-12-08T02:00:00+00:00", who="ops@laptop", kind="run", service="api",
                     node="misty-owl", command=["sh", "-c", "exit 3"], exit=3, seconds=0.4)
    assert _checked([good.model_dump()]) == [good]
    for bad in ({"runs": 1}, [{"time": "x"}], [{**good.model_dump(), "kind": "deploy"}]):
        with pytest.raises(DyniaError) as err:
            _checked(bad)
        assert err.value.kind == "state" and "pulumi stack rm" in err.value.hint


class _Reader:
    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks

    async def read(self, n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_streamed_output_is_handed_over_line_by_line_across_chunks_and_a_line_without_end_is_cut():
    from dynia.nodes.stream import MAX_LINE, _pump

    got: list[tuple[str, str]] = []
    asyncio.run(_pump(_Reader([b"one\ntw", b"o\n\xff", b"x" * (MAX_LINE + 10)]), "stdout",
                      lambda s, line: got.append((s, line))))
    assert got[:2] == [("stdout", "one"), ("stdout", "two")]
    assert [len(line) for _, line in got[2:]] == [MAX_LINE, 11]
    assert got[2][1].startswith("\ufffd")


def test_a_tail_keeps_the_last_lines_cut_and_escaped():
    from dynia.operations.oneoff import TAIL_LINES, TAIL_WIDTH, Tail

    tail = Tail()
    for i in range(TAIL_LINES + 5):
        tail.add(f"line {i}")
    tail.add("\x1b]0;owned\x07" + "y" * 400)
    lines = tail.text().splitlines()
    assert len(lines) == TAIL_LINES and lines[0] == "line 6"
    assert lines[-1].startswith("\\x1b]0;owned\\x07") and lines[-1].endswith("…")
    assert len(lines[-1]) <= TAIL_WIDTH + 10
