"""DigitalOcean's droplet actions, as dynia's resize roll uses them: a graceful `shutdown`
(followed by `power_off` only when the droplet is not off within a bound, as DigitalOcean's API
reference recommends: shutdown "guarantees that the command is issued, not that it succeeds"),
`resize`, `power_on`; each action polled (GET /v2/actions/{id}) until `completed`, every failure
typed. Requests go to DIGITALOCEAN_API_URL when set (tests: a replay of documented shapes)."""
from __future__ import annotations

import json
import time
from typing import Callable

from ..errors import DyniaError
from .do_api import api_base, api_get, api_token, decoded, unanswered

SHUTDOWN_SECONDS = 120.0   # a graceful shutdown, before power_off
ACTION_SECONDS = 1800.0    # a resize of a large disk takes minutes
POLL_SECONDS = 3.0


def _http_post(url: str, headers: dict[str, str], body: bytes, timeout: float) -> tuple[int, bytes]:
    """(status, body) of one POST; the only place this module touches the network."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST"),
                                    timeout=timeout) as resp:
            return resp.status, resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(1 << 16)


def post_action(droplet_id: str, body: dict, timeout: float = 30.0) -> dict:
    """POST /v2/droplets/{id}/actions: the action DigitalOcean started ({"id", "status", …})."""
    what = f"{body['type']} droplet {droplet_id}"
    token = api_token(what, "a token with droplet write scope")
    path = f"/droplets/{droplet_id}/actions"
    try:
        status, raw = _http_post(api_base() + path, {"Authorization": f"Bearer {token}",
                                                     "Content-Type": "application/json", "Accept": "application/json"},
                                 json.dumps(body).encode(), timeout)
    except (OSError, ValueError) as exc:
        raise unanswered("POST", path, exc) from None
    data = decoded(raw)
    action = data.get("action") if isinstance(data, dict) else None
    if status in (200, 201) and isinstance(action, dict) and action.get("id") is not None:
        return action
    message = data.get("message") if isinstance(data, dict) else None
    raise DyniaError("provider", f"DigitalOcean refused to {what}: {status}" + (f" ({message})" if message else ""),
                     "check the token's droplet write scope and the size slug (`doctl compute size list`); "
                     "a disk cannot shrink: a size with a smaller disk is refused")


def wait_action(action: dict, timeout: float = ACTION_SECONDS, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll GET /v2/actions/{id} until `completed`; `errored` or the bound is a provider error."""
    end = time.monotonic() + timeout
    while action.get("status") != "completed":
        if action.get("status") == "errored":
            raise DyniaError("provider", f"DigitalOcean's {action.get('type')} action {action.get('id')} on droplet "
                             f"{action.get('resource_id')} errored",
                             "see the droplet's history in DigitalOcean's control panel, then rerun `dynia up`")
        if time.monotonic() >= end:
            raise DyniaError("provider", f"DigitalOcean's {action.get('type')} action {action.get('id')} did not "
                             f"complete in {timeout:.0f} s", "check the droplet in DigitalOcean's control panel, "
                             "then rerun `dynia up` (a finished resize is not repeated)")
        sleep(POLL_SECONDS)
        action = api_get(f"/actions/{action['id']}", asking="follow a droplet action").get("action") or {}


def droplet(droplet_id: str) -> dict:
    try:
        return api_get(f"/droplets/{droplet_id}", asking="read a droplet").get("droplet") or {}
    except DyniaError as exc:
        if "does not know" in exc.message:   # api_get's 404
            raise DyniaError("provider", f"droplet {droplet_id} of the provision state no longer exists at "
                             "DigitalOcean", "run `dynia up --phase provision` after `pulumi refresh` of the "
                             "provision stack, or remove the node (`dynia cluster node remove`)") from None
        raise


class DropletPower:
    """The power and size steps of one droplet (what dynia.resize asks a provider for)."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep, shutdown_seconds: float = SHUTDOWN_SECONDS):
        self.sleep = sleep
        self.shutdown_seconds = shutdown_seconds

    def size_of(self, droplet_id: str) -> str | None:
        return droplet(droplet_id).get("size_slug")

    def shut_down(self, droplet_id: str) -> str:
        """Graceful first; power_off only if the droplet is not off within shutdown_seconds.
        Returns how it went down ("shutdown" or "power_off")."""
        wait_action(post_action(droplet_id, {"type": "shutdown"}), sleep=self.sleep)
        end = time.monotonic() + self.shutdown_seconds
        while droplet(droplet_id).get("status") != "off":
            if time.monotonic() >= end:
                wait_action(post_action(droplet_id, {"type": "power_off"}), sleep=self.sleep)
                return "power_off"
            self.sleep(POLL_SECONDS)
        return "shutdown"

    def resize(self, droplet_id: str, size: str) -> None:
        # disk true: CPU, RAM and disk, as Pulumi's droplet resize (resize_disk) did before
        # dynia took resizes over; DigitalOcean refuses a smaller disk.
        wait_action(post_action(droplet_id, {"type": "resize", "size": size, "disk": True}), sleep=self.sleep)

    def power_on(self, droplet_id: str) -> None:
        wait_action(post_action(droplet_id, {"type": "power_on"}), sleep=self.sleep)
