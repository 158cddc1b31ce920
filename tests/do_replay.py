"""DigitalOcean's API replayed on 127.0.0.1 from tests/fixtures/digitalocean: dynia reaches it
through DIGITALOCEAN_API_URL (the override Pulumi's DigitalOcean provider also reads), so a
`dynia` run in a subprocess reads recorded answers. Only GETs; every request is recorded."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "digitalocean"
# What `plan` and `up` read before a provision besides the VPCs (dynia/providers/do_catalog.py).
CATALOG = {"/v2/regions": ["regions"], "/v2/sizes": ["sizes_page1", "sizes_page2"]}


class LocalApi:
    """An HTTP double on 127.0.0.1: answer(path) → (status, JSON body) for each GET; every
    request is recorded as (path with query, Authorization)."""

    def __init__(self, answer: Callable[[str], tuple[int, bytes]]):
        self.requests: list[tuple[str, str | None]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                api.requests.append((self.path, self.headers.get("Authorization")))
                status, body = answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Replay(LocalApi):
    """answers: {"/v2/vpcs": ["vpcs_page1", "vpcs_page2"]} — the fixture of each page (?page=N)."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        super().__init__(self._answer)

    def _answer(self, path: str) -> tuple[int, bytes]:
        url = urlsplit(path)
        pages = self.answers.get(url.path)
        page = int(parse_qs(url.query).get("page", ["1"])[0])
        if not pages or page > len(pages):
            return 404, (FIXTURES / "error_not_found.json").read_bytes()
        return 200, (FIXTURES / f"{pages[page - 1]}.json").read_bytes()
