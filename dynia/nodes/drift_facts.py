"""The facts drift-check reads back: every managed file's hashes, mode, owner and immutable bit,
what lies in the directories dynia owns, and which image each service container runs.

One fact, one command: a python3 script (standard library; python3 is on every droplet and lab
node, the apply script needs it too) given the paths and image references to look at as one
JSON argument. It reads files only to hash them: the raw sha256 and the sha256 of the
whitespace-normalized text (`normalize`, the same function drift classification runs locally
on the desired bytes). Secret slots (certificate, stats credentials, token) are hashed raw
only, and only hashes leave the node: the node's own applied.json already holds those.
Nothing is written. Run through dynia.nodes.gather in the same round trip as the other facts.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import shlex

from ..paths import PATHS
from . import answers as A
from .facts import Fact

# The compose label both Docker Compose and podman-compose put on every container they create.
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
DRIFT = "drift"


def normalize(data: bytes) -> bytes:
    """Text with its whitespace made canonical: line endings to LF, every line stripped and its
    inner runs of blanks collapsed to one space, blank lines dropped. Two files that differ only
    in indentation, trailing blanks, blank lines or CRLF normalize equal; a change that joins or
    splits lines, or touches a token, does not (newlines separate directives in every config
    dynia renders). Runs on the node too (its source is part of the fact's script)."""
    text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = (b" ".join(line.split()) for line in text.split(b"\n"))
    return b"\n".join(line for line in lines if line)


def normalized_sha256(data: bytes) -> str:
    return hashlib.sha256(normalize(data)).hexdigest()


# The node side. Standard library only; DYNIA_ROOT prefixes every path (tests run it on a directory).
_NODE = r'''
import fcntl, grp, hashlib, json, os, pwd, stat, struct, subprocess, sys
ROOT = os.environ.get("DYNIA_ROOT", "/")
CAP = 4 << 20
MAXLIST = {LISTING_MAX}
FS_IOC_GETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x10
def hp(t):
    return os.path.join(ROOT, t.lstrip("/"))
def owner(st):
    try:
        u = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        u = str(st.st_uid)
    try:
        g = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        g = str(st.st_gid)
    return u + ":" + g
def immutable(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        buf = fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8)
        return bool(struct.unpack("i", buf[:4])[0] & FS_IMMUTABLE_FL)
    except OSError:
        return None
    finally:
        os.close(fd)
def look(target, secret):
    path = hp(target)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return {"exists": False}
    except OSError as exc:
        return {"exists": True, "type": "other", "mode": None, "owner": None, "error": exc.strerror}
    out = {"exists": True, "mode": "%04o" % (st.st_mode & 0o7777), "owner": owner(st)}
    if not stat.S_ISREG(st.st_mode):
        out["type"] = "symlink" if stat.S_ISLNK(st.st_mode) else "other"
        return out
    out["type"] = "file"
    h, parts, size = hashlib.sha256(), [], 0
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                h.update(chunk)
                size += len(chunk)
                if not secret and size <= CAP:
                    parts.append(chunk)
    except OSError as exc:
        out.update(type="other", error=exc.strerror)
        return out
    out["sha256"] = h.hexdigest()
    if not secret and size <= CAP:
        out["normalized"] = hashlib.sha256(normalize(b"".join(parts))).hexdigest()
    out["immutable"] = immutable(path)
    return out
TOTALS = {}
def listing(directory):
    try:
        names = sorted(os.listdir(hp(directory)))
    except OSError:
        return []
    if len(names) > MAXLIST:
        TOTALS[directory] = len(names)
    return names[:MAXLIST]
def engine_json(engine, args):
    try:
        p = subprocess.run([engine] + args, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return None, engine + " is not installed"
    except subprocess.TimeoutExpired:
        return None, engine + " did not answer in 20 s"
    if p.returncode != 0:
        return None, (p.stderr.decode(errors="replace").strip().splitlines() or ["exit %d" % p.returncode])[-1][:200]
    return p.stdout.decode(errors="replace"), None
def containers(want):
    engine = want.get("engine")
    if not engine:
        return None
    out = {"engine": engine, "running": [], "images": {}, "error": None}
    ids, err = engine_json(engine, ["ps", "-q", "--no-trunc", "--filter", "label=" + want["projectLabel"]])
    if err:
        out["error"] = err
        return out
    ids = ids.split()
    if ids:
        text, err = engine_json(engine, ["container", "inspect"] + ids)
        if err:
            out["error"] = err
            return out
        for c in json.loads(text):
            labels = (c.get("Config") or {}).get("Labels") or {}
            out["running"].append({"name": (c.get("Name") or "").lstrip("/"), "image": c.get("Image"),
                                   "project": labels.get(want["projectLabel"]),
                                   "service": labels.get(want["serviceLabel"])})
    for ref in want.get("images", []):
        text, err = engine_json(engine, ["image", "inspect", ref])
        out["images"][ref] = None if err else (json.loads(text) or [{}])[0].get("Id")
    return out
def main(want):
    managed = {t: look(t, False) for t in want["files"]}
    managed.update({t: look(t, True) for t in want["slots"]})
    dirs = {}
    for d in want["composeDirs"]:
        dirs[d] = [{"name": n, "composeFile": os.path.exists(os.path.join(hp(d), n, want["composeFileName"]))}
                   for n in listing(d)]
    return {"files": managed, "composeDirs": dirs, "routes": {d: listing(d) for d in want["routeDirs"]},
            "containers": containers(want), "listingTotals": TOTALS}
print(json.dumps(main(json.loads(sys.argv[1])), sort_keys=True))
'''


def node_script() -> str:
    """The python3 program of the fact: `normalize` (its very source) plus the reader above."""
    return "import hashlib\n" + inspect.getsource(normalize) + _NODE.replace("{LISTING_MAX}", str(A.LISTING_MAX))


def command(files: list[str], slots: list[str], *, engine: str | None, images: list[str]) -> str:
    """`python3 -c <script> <what to look at>`: paths and image references only, never a secret."""
    want = {"files": sorted(set(files)), "slots": sorted(set(slots)),
            "composeDirs": [PATHS.compose_dir], "composeFileName": PATHS.compose_file("x").rsplit("/", 1)[1],
            "routeDirs": [PATHS.caddy_routes], "engine": engine, "images": sorted(set(images)),
            "projectLabel": PROJECT_LABEL, "serviceLabel": SERVICE_LABEL}
    return f"python3 -c {shlex.quote(node_script())} {shlex.quote(json.dumps(want, sort_keys=True))}"


def parse_drift(output: str, exit_status: int) -> dict:
    """The script's JSON as dynia.nodes.answers.DriftAnswer has it, or {"error": why} (no
    python3, a crash, an answer that does not fit): a node that cannot answer is reported,
    never taken for a clean one. Listings are cut to answers.LISTING_MAX names; how many were
    left out is in "listingOmitted" (directory → count), present only when some were."""
    if exit_status != 0:
        why = "python3 is not installed" if exit_status == 127 else f"the drift reader exited {exit_status}"
        return {"error": why}
    try:
        data = A.loads(output.strip().splitlines()[-1] if output.strip() else "")
    except A.Unreadable as exc:
        return {"error": f"the drift reader's answer is {exc}"}
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return {"error": "the drift reader's answer has no files"}
    try:
        omitted = _cut_listings(data)
        data = A.read(A.DriftAnswer, data)
    except A.Unreadable as exc:
        return {"error": f"the drift reader's answer is malformed ({exc})"}
    totals = data.pop("listingTotals", {})
    for d in {**data.get("composeDirs", {}), **data.get("routes", {})}:
        if totals.get(d, 0) > A.LISTING_MAX:
            omitted[d] = max(omitted.get(d, 0), totals[d] - A.LISTING_MAX)
    data.setdefault("composeDirs", {})
    data.setdefault("routes", {})
    data.setdefault("containers", None)
    if omitted:
        data["listingOmitted"] = omitted
    return data


def _cut_listings(data: dict) -> dict[str, int]:
    """Cut every directory listing of the answer to LISTING_MAX entries (a node may hold, or
    claim, hundreds of thousands): directory → how many were cut."""
    omitted = {}
    for key in ("composeDirs", "routes"):
        listings = data.get(key)
        if not isinstance(listings, dict):
            continue
        for d, names in listings.items():
            if isinstance(names, list) and len(names) > A.LISTING_MAX:
                omitted[d] = len(names) - A.LISTING_MAX
                listings[d] = names[:A.LISTING_MAX]
    return omitted


def fact(files: list[str], slots: list[str], *, engine: str | None, images: list[str]) -> Fact:
    """The drift fact for these paths (the same on every node: every node mirrors every file)."""
    return Fact(DRIFT, command(files, slots, engine=engine, images=images), parse_drift)


def image_id(value: str | None) -> str | None:
    """Docker says sha256:<hex>, podman <hex>: one form for both."""
    if not value:
        return None
    return value.removeprefix("sha256:")
