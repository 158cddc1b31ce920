#!/usr/bin/env python3
"""dynia's data-volume mover, run on a node (standard library only; sent with the infra push).

    volume.py take SERVICE      attach the service's volume here, check and mount it
    volume.py release SERVICE   unmount it and detach it from here

notify.sh runs `take` on a MASTER transition before it starts the service, and never starts the
service when `take` fails; the apply script runs it before starting a data service on the
holder. `release` runs after the service is stopped (BACKUP, FAULT, STOP, a push that moves it).

Order and safety: only the node whose latest VRRP state is MASTER may take a volume. A volume
still attached to the old holder gets a grace period for that node's own `release` (its
notify.sh stops the service first when it still answers), then a forced detach: the provider's
detach is the fence (the old holder can no longer write or mount it). Every provider call is
retried like the reserved-IP assignment (pending action, rate limit, no answer: back off,
1 s doubling to 30 s); every step is idempotent (run it twice: the same end). A failed take
writes the node's `degraded` marker with the reason and an alert-ready record, and exits 1.

The configuration (/etc/dynia/volumes.json, rendered per node) names the provider's API
(`local`: the lab's dynia-lab-volume command; `digitalocean`: its volume actions API, with the
node token) and each service's volume, filesystem and mount. The last provider call per service
(action, outcome, HTTP status or exit code, droplet) is recorded in
/opt/dynia/state/volume-actions/<service>.json, like notify.sh's reserved-IP assignment.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time

ROOT = os.environ.get("DYNIA_ROOT", "/").rstrip("/")
CONFIG = ROOT + "/etc/dynia/volumes.json"
STATE = ROOT + "/opt/dynia/state"
ATTACHED_ELSEWHERE = 3   # the provider's "attached to another node" (DigitalOcean's 422)
RETRY = 75   # the API command itself failed: no answer, busy (lab: exit codes other than 3 and 4)


class Failed(Exception):
    pass


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def vrrp_state() -> str:
    try:
        with open(f"{STATE}/vrrp") as f:
            return (f.read().split() or ["UNKNOWN"])[0]
    except OSError:
        return "UNKNOWN"


def run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


class LabApi:
    """The local provider's block storage: dynia.providers.lab_volumes through the node's command."""

    def __init__(self, config: dict):
        self.command = config["api_command"]
        self.last = {"outcome": "none", "status": "", "droplet": ""}

    def _call(self, *args: str) -> subprocess.CompletedProcess:
        done = run([self.command, *args])
        # The lab's "API" answers with exit codes, recorded where DigitalOcean's HTTP status goes.
        outcome = {0: "attached" if args[0] == "attach" else "detached", ATTACHED_ELSEWHERE: "elsewhere",
                   RETRY: "retry"}.get(done.returncode, "refused")
        self.last = {"outcome": outcome, "status": str(done.returncode), "droplet": ""}
        return done

    def attach(self, name: str) -> tuple[str, str | None]:
        """('ok', device) | ('elsewhere', None) | ('retry', None); raises Failed on a refusal."""
        done = self._call("attach", name)
        if done.returncode == 0:
            return "ok", done.stdout.strip()
        if done.returncode == ATTACHED_ELSEWHERE:
            return "elsewhere", None
        if done.returncode == RETRY:
            return "retry", None
        raise Failed(f"attach {name}: {done.stderr.strip() or done.returncode}")

    def detach(self, name: str, force: bool = False) -> None:
        done = self._call("detach", name, *(["--force"] if force else []))
        if done.returncode not in (0,):
            raise Failed(f"detach {name}: {done.stderr.strip() or done.returncode}")


class DoApi:
    """DigitalOcean Block Storage through its volume actions API, with the node token (the one
    notify.sh assigns the reserved IP with; read from its 0600 file, sent in a header only).

    The volume is found by name in the cluster's region (GET /v2/volumes?name=&region=), which
    also says which droplet holds it; attach and detach are POST /v2/volumes/<id>/actions
    ({"type", "droplet_id", "region"}), then the action is polled until it completes. This
    droplet's id comes from the metadata service, asked on every try (it can fail like the API)."""

    ACTION_SECONDS = 60.0   # an attach or detach usually completes in a few seconds
    DEVICE_SECONDS = 30.0   # udev names the attached disk soon after the action completes

    def __init__(self, config: dict):
        self.base = config["api_url"].rstrip("/") + "/v2"
        self.metadata = config["metadata_url"].rstrip("/")
        self.region = config["region"]
        self.device_dir = config["device_dir"]
        self.token_file = ROOT + config["token"]
        self.tries = config["tries"]
        # The last call's outcome, HTTP status and droplet: written to the node's record (take, release).
        self.last = {"outcome": "none", "status": "000", "droplet": ""}

    def _token(self) -> str:
        try:
            with open(self.token_file) as f:
                return f.read().strip()
        except OSError:
            self._note("no-token", 0, "")
            raise Failed("no provider token on this node") from None

    def _note(self, outcome: str, status: int, droplet) -> None:
        self.last = {"outcome": outcome, "status": f"{status:03d}", "droplet": str(droplet or "")}

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """(HTTP status, JSON answer); (0, {}) when nothing answered."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token()}", "Content-Type": "application/json",
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                status, raw = answer.status, answer.read(1 << 20)
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read(1 << 16)
        except (OSError, ValueError):
            return 0, {}
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            data = {}
        return status, data if isinstance(data, dict) else {}

    def droplet(self) -> int | None:
        import urllib.request

        try:
            with urllib.request.urlopen(self.metadata + "/id", timeout=5) as answer:
                text = answer.read(64).decode().strip()
        except (OSError, ValueError):
            return None
        return int(text) if text.isdigit() else None   # an id is digits; anything else is no answer

    def _refused(self, what: str, status: int, data: dict, droplet) -> Failed:
        self._note("refused", status, droplet)
        return Failed(f"{what} answered {status}: {data.get('message') or data.get('id') or 'no message'}")

    def _volume(self, name: str, droplet) -> tuple[str, dict | None]:
        """('ok', volume) | ('retry', None); raises Failed on a refusal or a volume that is not there."""
        from urllib.parse import urlencode

        status, data = self._request("GET", "/volumes?" + urlencode({"name": name, "region": self.region}))
        if status == 200:
            found = [v for v in data.get("volumes") or [] if isinstance(v, dict) and v.get("name") == name]
            if not found:
                self._note("no-volume", status, droplet)
                raise Failed(f"no volume {name} in {self.region} (the provision phase creates it)")
            return "ok", found[0]
        if status in RETRIED:
            self._note("retry", status, droplet)
            return "retry", None
        raise self._refused(f"GET volume {name}", status, data, droplet)

    def _act(self, volume: dict, kind: str, droplet: int) -> str:
        """Start an attach or detach and wait for it: 'ok' | 'retry'; raises Failed on a refusal."""
        status, data = self._request("POST", f"/volumes/{volume['id']}/actions",
                                     {"type": kind, "droplet_id": droplet, "region": self.region})
        if status in RETRIED:   # 422: an earlier action on the volume or droplet is still pending
            self._note("retry", status, droplet)
            return "retry"
        if status not in (200, 201, 202):
            raise self._refused(f"{kind} {volume['name']}", status, data, droplet)
        action = data.get("action") or {}
        deadline = time.monotonic() + self.ACTION_SECONDS
        while action.get("status") == "in-progress" and time.monotonic() < deadline:
            time.sleep(1.0)
            polled, answer = self._request("GET", f"/volumes/{volume['id']}/actions/{action.get('id')}")
            if polled == 200:
                action = answer.get("action") or action
        if action.get("status") != "completed":
            self._note("retry", status, droplet)   # errored, or still in progress: ask again
            return "retry"
        self._note("attached" if kind == "attach" else "detached", status, droplet)
        return "ok"

    def _device(self, name: str) -> str:
        path = f"{self.device_dir}/scsi-0DO_Volume_{name}"
        deadline = time.monotonic() + self.DEVICE_SECONDS
        while not os.path.exists(path):
            if time.monotonic() >= deadline:
                raise Failed(f"volume {name} is attached but {path} did not appear")
            time.sleep(0.2)
        return path

    def attach(self, name: str) -> tuple[str, str | None]:
        """('ok', device) | ('elsewhere', None) | ('retry', None); raises Failed on a refusal."""
        droplet = self.droplet()
        if droplet is None:
            self._note("retry", 0, "")
            return "retry", None
        answer, volume = self._volume(name, droplet)
        if volume is None:
            return answer, None
        holders = volume.get("droplet_ids") or []
        if droplet in holders:
            self._note("attached", 200, droplet)
            return "ok", self._device(name)
        if holders:
            self._note("elsewhere", 200, holders[0])
            return "elsewhere", None
        if self._act(volume, "attach", droplet) != "ok":
            return "retry", None
        return "ok", self._device(name)

    def detach(self, name: str, force: bool = False) -> None:
        """Detach from this droplet; `force`: from whichever droplet holds it (the old holder is
        gone: the detach is the fence). Attached nowhere: done already. Retried like attach."""
        delay = 1.0
        for _ in range(self.tries):
            droplet = self.droplet()
            if droplet is not None:
                answer, volume = self._volume(name, droplet)
                if volume is not None:
                    holders = volume.get("droplet_ids") or []
                    if not holders:
                        self._note("detached", 200, droplet)
                        return
                    if holders[0] != droplet and not force:
                        self._note("elsewhere", 200, holders[0])
                        raise Failed(f"volume {name} is attached to droplet {holders[0]}, not this one")
                    if self._act(volume, "detach", holders[0]) == "ok":
                        return
            else:
                self._note("retry", 0, "")
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        self._note("gave-up", int(self.last["status"]), self.last["droplet"])
        raise Failed(f"volume {name} not detached after {self.tries} tries")


# No answer, a pending action (422), the rate limit, the API's own trouble: back off and ask again.
RETRIED = {0, 422, 429, 500, 502, 503, 504}


def api_for(config: dict):
    if config["api"] == "local":
        return LabApi(config)
    if config["api"] == "digitalocean":
        return DoApi(config)
    raise Failed(f"no block-storage API {config['api']!r} on this node")


def mounted_device(mount: str) -> str | None:
    """The device mounted at `mount` in this node's mount namespace, or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mount:
                return fields[fields.index("-") + 2]
    return None


def mounts_of(device: str) -> list[str]:
    """Every mount point of `device` here (DigitalOcean's droplet image also mounts a formatted
    volume under /mnt by itself when it is attached)."""
    real = os.path.realpath(device)
    with open("/proc/self/mountinfo") as f:
        return [fields[4] for fields in (line.split() for line in f)
                if os.path.realpath(fields[fields.index("-") + 2]) == real]


def check_and_mount(device: str, vol: dict) -> None:
    mount = ROOT + vol["mount"]
    have = mounted_device(mount)
    # The API names the device by a link (DigitalOcean: /dev/disk/by-id/…); mountinfo, by the disk.
    if (have is not None and os.path.realpath(have) == os.path.realpath(device) and os.access(mount, os.W_OK)
            and run(["touch", f"{mount}/.dynia-volume"]).returncode == 0):
        return   # already mounted here, and it answers
    if have is not None:
        # A stale mount (a fenced attachment of an earlier term): it can only fail.
        run(["umount", "-l", mount])
    for point in mounts_of(device):
        # Not ours: DigitalOcean's image mounts a formatted volume under /mnt by itself when it is
        # attached, and fsck checks only an unmounted filesystem.
        if run(["umount", point]).returncode != 0:
            raise Failed(f"{device} is mounted at {point} and does not unmount: it is in use there")
    if vol["filesystem"] == "ext4":
        fsck = run(["fsck.ext4", "-p", device], timeout=600)
        if fsck.returncode not in (0, 1):   # 1: errors corrected; 2+: reboot needed or left
            raise Failed(f"fsck of {device} exited {fsck.returncode}: {fsck.stdout.strip()[-300:]}")
    os.makedirs(mount, exist_ok=True)
    done = run(["mount", "-t", vol["filesystem"], device, mount])
    if done.returncode != 0:
        raise Failed(f"mount {device} on {vol['mount']}: {done.stderr.strip()}")


# A push reaches the configured MASTER right after its infra push (re)started keepalived: VRRP makes
# it MASTER only once keepalived's HAProxy check passes and it preempts whoever stood in. The take
# waits that long for MASTER, not for ever (notify.sh's take runs on the transition itself).
MASTER_WAIT_SECONDS = 30.0


def wait_for_master(name: str) -> None:
    deadline = time.monotonic() + MASTER_WAIT_SECONDS
    while (state := vrrp_state()) != "MASTER":
        if time.monotonic() >= deadline:
            raise Failed(f"this node is {state}, not MASTER: it may not take volume {name}")
        time.sleep(0.2)


def attach_here(api, vol: dict, config: dict) -> str:
    name = vol["name"]
    wait_for_master(name)
    delay, grace_end, forced, tries = 1.0, time.monotonic() + config["grace_seconds"], False, 0
    while True:
        state = vrrp_state()
        if state != "MASTER":
            raise Failed(f"this node is {state}, not MASTER: it may not take volume {name}")
        answer, device = api.attach(name)
        if answer == "ok":
            return device
        if answer == "elsewhere" and time.monotonic() < grace_end:
            time.sleep(0.2)   # the old holder's own release (its notify.sh) may still come
            continue
        if answer == "elsewhere" and not forced:
            # The old holder did not let go: it is gone, or cannot be reached. The forced
            # detach fences it: it cannot write another block or mount the volume again.
            api.detach(name, force=True)
            forced = True
            continue
        tries += 1
        if tries >= config["tries"]:
            break
        time.sleep(delay)
        delay = min(delay * 2, 30.0)
    api.last = {**api.last, "outcome": "gave-up"}
    raise Failed(f"volume {name} not attached after {tries} tries (last answer: {answer})")


def record_action(service: str, action: str, api) -> None:
    """The last provider call for the service's volume, as notify.sh records its reserved-IP
    assignment (time, outcome, status, droplet): status and infra verify read it back."""
    last = getattr(api, "last", None) or {"outcome": "none", "status": "", "droplet": ""}
    write_atomic(f"{STATE}/volume-actions/{service}.json",
                 json.dumps({"time": now(), "action": action, **last}, sort_keys=True) + "\n")


def take(service: str) -> int:
    config = load()
    vol = config["volumes"][service]
    api = None
    try:
        api = api_for(config)
        device = attach_here(api, vol, config)
        check_and_mount(device, vol)
    except (Failed, OSError, subprocess.SubprocessError) as e:
        if api is not None:
            record_action(service, "attach", api)
        reason = f"data volume of {service}: {e}"
        write_atomic(f"{STATE}/degraded", json.dumps({"reason": reason, "time": now(), "layer": f"service:{service}"}) + "\n")
        write_atomic(f"{STATE}/alerts/volume-{service}.json",
                     json.dumps({"kind": "volume", "service": service, "volume": vol["name"],
                                 "reason": str(e), "time": now()}) + "\n")
        print(f"dynia volume: {reason}; {service} stays stopped", file=sys.stderr)
        return 1
    record_action(service, "attach", api)
    write_atomic(f"{STATE}/volumes/{service}.json",
                 json.dumps({"volume": vol["name"], "device": device, "mount": vol["mount"], "time": now()}) + "\n")
    for path in (f"{STATE}/alerts/volume-{service}.json",):
        if os.path.exists(path):
            os.remove(path)
    return 0


def release(service: str) -> int:
    config = load()
    vol = config["volumes"][service]
    mount = ROOT + vol["mount"]
    device = mounted_device(mount)
    for point in ([mount] + [p for p in mounts_of(device) if p != mount]) if device is not None else []:
        done = run(["umount", point])
        if done.returncode != 0:
            run(["umount", "-l", point])   # a fenced or busy mount: the detach below ends it anyway
    api = api_for(config)
    try:
        api.detach(vol["name"])
    except Failed as e:
        # Attached elsewhere already (a new holder forced it): nothing of ours to let go.
        print(f"dynia volume: {e}", file=sys.stderr)
    record_action(service, "detach", api)
    try:
        os.remove(f"{STATE}/volumes/{service}.json")
    except FileNotFoundError:
        pass
    return 0


def load() -> dict:
    with open(CONFIG) as f:
        return json.load(f)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("take", "release"):
        print("usage: volume.py take|release SERVICE", file=sys.stderr)
        return 2
    os.makedirs(STATE, exist_ok=True)
    # One volume step at a time on this node (notify.sh and a push may both ask).
    with open(f"{STATE}/volume.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return (take if argv[0] == "take" else release)(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
