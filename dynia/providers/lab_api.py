"""The lab's stand-in for DigitalOcean's reserved-IP API and droplet metadata (not DigitalOcean).

A lab runs one per lab directory, on this machine's address on the lab bridge (the gateway, the
lab nodes' default route), port PORT, started with the lab's shared parts and stopped with them.
It answers, in DigitalOcean's documented shapes, exactly what dynia's nodes and dynia itself ask:

    GET  /metadata/v1/id                 the asking node's droplet id (by its address, as the
                                          metadata service answers a droplet about itself)
    POST /v2/reserved_ips/<ip>/actions   {"type": "assign", "droplet_id": N}, with the node token
                                          as a Bearer token: 201 and the assignment recorded;
                                          another token: 401, nothing recorded
    GET  /v2/reserved_ips/<ip>            who holds it: {"reserved_ip": {"ip", "droplet": {id,
                                          name, networks}}} (droplet null when unassigned)

The token it accepts is the one in DIR/lab-api-token (written with the lab, the local provider's
node token; a test writes another to make the nodes' token a refused one). The assignment is
kept in DIR/lab-api-reserved-ip.json. keepalived still puts the VIP on the MASTER's interface
(that is how lab traffic reaches it); what the provider *says* is this record, as on DigitalOcean,
where a refused assignment leaves the address where it was whatever keepalived believes.
"""
from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = 8471
TOKEN_FILE = "lab-api-token"
RECORD_FILE = "lab-api-reserved-ip.json"
PID_FILE = "lab-api.pid"
LOG_FILE = "lab-api.log"
FIRST_DROPLET_ID = 4242001   # node i of the lab is droplet FIRST_DROPLET_ID + i


def droplets(lab_state: dict) -> dict[int, dict]:
    """droplet id → the lab node (id, ip), in the lab's node order."""
    return {FIRST_DROPLET_ID + i: n for i, n in enumerate(lab_state["nodes"])}


def droplet_shape(droplet_id: int, node: dict) -> dict:
    """The droplet as DigitalOcean's reserved-IP answer embeds it (the fields dynia reads)."""
    return {"id": droplet_id, "name": node["id"], "status": "active",
            "networks": {"v4": [{"ip_address": node["ip"], "type": "private"}], "v6": []}}


class LabApi:
    """The server over one lab directory (its lab.json names the nodes, the VIP)."""

    def __init__(self, directory: Path, host: str, port: int = PORT):
        self.dir = Path(directory)
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                api.answer(self, "GET")

            def do_POST(self):
                api.answer(self, "POST")

            def log_message(self, fmt, *args):
                sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

        self.server = ThreadingHTTPServer((host, port), Handler)

    def state(self) -> dict:
        return json.loads((self.dir / "lab.json").read_text())

    def holder(self) -> int | None:
        try:
            return json.loads((self.dir / RECORD_FILE).read_text()).get("droplet_id")
        except (OSError, ValueError):
            return None

    def answer(self, req: BaseHTTPRequestHandler, method: str) -> None:
        state = self.state()
        known = droplets(state)
        path = req.path.split("?", 1)[0]
        vip_path = f"/v2/reserved_ips/{state['vip']}"
        if method == "GET" and path == "/metadata/v1/id":
            me = next((i for i, n in known.items() if n["ip"] == req.client_address[0]), None)
            return self.send(req, 200, str(me).encode(), "text/plain") if me else self.error(req, 404, "not_found")
        if method == "GET" and path == vip_path:
            held = self.holder()
            droplet = droplet_shape(held, known[held]) if held in known else None
            return self.send_json(req, 200, {"reserved_ip": {"ip": state["vip"], "droplet": droplet, "locked": False}})
        if method == "POST" and path == vip_path + "/actions":
            token = (self.dir / TOKEN_FILE).read_text().strip()
            if req.headers.get("Authorization") != f"Bearer {token}":
                return self.error(req, 401, "unauthorized", "Unable to authenticate you")
            try:
                length = int(req.headers.get("Content-Length") or 0)
                body = json.loads(req.rfile.read(min(length, 1 << 16)) or b"{}")
                droplet_id = int(body["droplet_id"])
            except (ValueError, KeyError, TypeError):
                return self.error(req, 422, "unprocessable_entity", "droplet_id is required")
            if body.get("type") != "assign" or droplet_id not in known:
                return self.error(req, 422, "unprocessable_entity", "unknown droplet or action type")
            with self.lock:
                tmp = self.dir / (RECORD_FILE + ".tmp")
                tmp.write_text(json.dumps({"droplet_id": droplet_id}))
                os.replace(tmp, self.dir / RECORD_FILE)
            return self.send_json(req, 201, {"action": {"id": 1, "status": "in-progress", "type": "assign_ip",
                                                        "resource_type": "reserved_ip"}})
        return self.error(req, 404, "not_found", "The resource you were accessing could not be found.")

    def error(self, req, status: int, ident: str, message: str = "") -> None:
        self.send_json(req, status, {"id": ident, "message": message})

    def send_json(self, req, status: int, data: dict) -> None:
        self.send(req, status, json.dumps(data).encode(), "application/json")

    @staticmethod
    def send(req, status: int, body: bytes, kind: str) -> None:
        req.send_response(status)
        req.send_header("Content-Type", kind)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dynia.providers.lab_api", description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=PORT)
    args = ap.parse_args(argv)
    api = LabApi(args.dir, args.host, args.port)

    def watch() -> None:
        # The lab's teardown stops it; a lab torn down another way (its directory deleted) must not
        # leave it holding the gateway's port for the next lab on the same subnet.
        import time

        while (args.dir / "lab.json").exists():
            time.sleep(1)
        api.server.shutdown()

    threading.Thread(target=watch, daemon=True).start()
    api.server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
