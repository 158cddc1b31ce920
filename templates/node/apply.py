# dynia node apply script. Sent with every push (never installed), run by python3 on the node,
# reads one bundle (JSON) on stdin. Standard library only: it must run on a bare droplet.
#
# Contract (DESIGN §5): compare → backup → (unlock) atomic write → validate → reload the
# affected components → health gate → on failure restore + reload + degraded marker, exit
# non-zero with a one-line reason on stderr; on success applied.json, re-lock, clear degraded.
#
# A service layer's bundle also says whether the service should run on this node (`run`: an
# active-only service runs on the VIP holder only). The node records the run state it applied
# per layer (applied.json "run"); a difference is a change like a file's: should run → start
# it (its reload command) and gate it; should not → stop it. A record without it is unknown.
#
# The host firewall is one more component of the infra layer (nftables): its validator is
# `nft -c` plus a load into a scratch network namespace that refuses a file not admitting this
# push's SSH address; its reload is one `nft -f` transaction; its gate check reads the loaded
# table; a rollback loads the previous file again, or deletes the table when there was none.
# Backups keep each file's mode (a 0600 secret's copy is 0600).
#
# A `partial` bundle (`dynia cert renew` while other changes are pending) carries one secret slot
# of a layer the node already has: its record is merged into the layer's, the config version
# stays, and a degraded marker stays (the change whose gate failed is still not applied).
#
# Exit codes: 0 applied or unchanged, 10 bad bundle, 20 validation failed (restored, nothing
# reloaded), 30 health gate failed (rolled back), 40 apply error (restore attempted).
import base64
import fcntl
import grp
import hashlib
import http.client
import json
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

ROOT = os.environ.get("DYNIA_ROOT", "/")
KEEP_BACKUPS = 5
STATE = "/opt/dynia/state"
BACKUPS = "/opt/dynia/backups"
# Every push's outcome, one line (`dynia logs dynia`): the journal where journald runs (droplets,
# as SYSLOG_IDENTIFIER dynia), else this file (lab nodes), which keeps its last LOG_KEEP bytes
# and one older file. Kept equal to dynia.paths (APPLY_LOG_IDENTIFIER, PATHS.apply_log).
LOG_IDENTIFIER = "dynia"
APPLY_LOG = "/var/log/dynia/apply.log"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
LOG_KEEP = 1 << 20


class Failure(Exception):
    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def step(name, detail=""):
    """One progress line per protocol step, on stdout and flushed at once: the command provider
    logs each output line as an engine event while the push runs, which is how `dynia up` shows
    where a node is. Step names and counts only, never content. stdout's last line stays the
    JSON report (read by dynia.nodes.push); stderr keeps the one-line failure reason."""
    sys.stdout.write("dynia-step %s%s\n" % (name, " " + detail if detail else ""))
    sys.stdout.flush()


def host_path(target):
    return os.path.join(ROOT, target.lstrip("/"))


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def owner_of(st):
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user + ":" + group


def current(target):
    """(sha256, mode, owner) of the file on the node, or None if it does not exist."""
    path = host_path(target)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return sha256_of(path), "%04o" % (st.st_mode & 0o7777), owner_of(st)


def run(command, timeout=900):
    """Run a profile command under sh with DYNIA_ROOT in its environment. A command that outlives
    its timeout (a first `compose up` pulling images on a small droplet) is a failure like any
    other, so the caller restores and rolls back instead of dying mid-protocol."""
    env = dict(os.environ, DYNIA_ROOT=ROOT)
    try:
        proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return 124, "timed out after %d s: %s" % (timeout, command.split()[0] if command.split() else command)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def last_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1][:300] if lines else "no output"


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def set_immutable(path, on):
    """chattr ±i; a filesystem without attributes only loses the lockdown, never the apply."""
    if os.path.exists(path):
        subprocess.run(["chattr", "+i" if on else "-i", path], capture_output=True)


def pause_for_test(point):
    """Test-only: DYNIA_TEST_PAUSE=<point> stops the script there, so a crash test can SIGKILL it
    at an exact step instead of guessing a moment. Nothing sets it on a node (a push passes no
    environment over SSH), and then this is one dictionary lookup."""
    if os.environ.get("DYNIA_TEST_PAUSE") == point:
        sys.stderr.write("dynia-test-pause: %s\n" % point)
        sys.stderr.flush()
        time.sleep(60)  # bounded: a test that forgets its kill leaves no process behind for long


def write_atomic(target, content, mode, owner):
    path = host_path(target)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, ".%s.dynia-%d.tmp" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        apply_owner_mode(tmp, mode, owner)
        pause_for_test("before-rename")
        os.replace(tmp, path)
        pause_for_test("after-rename")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def apply_owner_mode(path, mode, owner):
    if os.geteuid() == 0:
        user, _, group = owner.partition(":")
        os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group or user).gr_gid)
    os.chmod(path, int(mode, 8))


# --- backups ---------------------------------------------------------------------------

def make_backup(bundle, targets):
    """Copy the files about to change (and note the ones that do not exist yet)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = "v%s-%s-%s-%d" % (bundle["configVersion"], bundle["layer"].replace(":", "-"), stamp, os.getpid())
    root = host_path(BACKUPS)
    directory = os.path.join(root, name)
    os.makedirs(directory, mode=0o700)
    entries = []
    for target in targets:
        path = host_path(target)
        entry = {"target": target, "existed": os.path.exists(path)}
        if entry["existed"]:
            st = os.stat(path)
            copy = os.path.join(directory, "files", target.lstrip("/"))
            os.makedirs(os.path.dirname(copy), mode=0o700, exist_ok=True)
            copy_keeping_mode(path, copy, st.st_mode & 0o777)
            entry.update(mode="%04o" % (st.st_mode & 0o7777), owner=owner_of(st), copy=copy)
        entries.append(entry)
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump({"bundle": {k: bundle[k] for k in ("node", "layer", "configVersion")}, "files": entries}, f,
                  indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    rotate_backups(root)
    return entries


def copy_keeping_mode(src, dst, mode):
    """A backup copy with the original's permission bits: a 0600 secret's copy is 0600 too, and
    it never exists with wider ones (created 0600, widened only to the original's mode)."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            shutil.copyfileobj(f, out)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(dst)
        raise
    os.chmod(dst, mode)


def rotate_backups(root):
    names = sorted(os.listdir(root), key=lambda n: os.stat(os.path.join(root, n)).st_mtime_ns)
    for old in names[:-KEEP_BACKUPS]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)


def restore(entries, lockdown):
    for entry in entries:
        path = host_path(entry["target"])
        if lockdown:
            set_immutable(path, False)
        if entry["existed"]:
            with open(entry["copy"], "rb") as f:
                write_atomic(entry["target"], f.read(), entry["mode"], entry["owner"])
            if lockdown:
                set_immutable(path, True)
        elif os.path.exists(path):
            os.unlink(path)


# --- health gate -----------------------------------------------------------------------

def check_once(check):
    kind = check["type"]
    timeout = float(check.get("timeout", 3))
    if kind == "tcp":
        with socket.create_connection((check["host"], int(check["port"])), timeout=timeout):
            return True, "connected"
    if kind == "http":
        scheme = check.get("scheme", "http")
        if scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the origin certificate is for Cloudflare, not for us
            conn = http.client.HTTPSConnection(check["host"], int(check["port"]), timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(check["host"], int(check["port"]), timeout=timeout)
        try:
            headers = {"Host": check["hostHeader"]} if check.get("hostHeader") else {}
            conn.request("GET", check.get("path", "/"), headers=headers)
            status = conn.getresponse().status
        finally:
            conn.close()
        low, high = check.get("expect", [200, 399])
        return low <= status <= high, "HTTP %d" % status
    if kind == "command":
        code, out = run(check["command"], timeout=timeout)
        return code == 0, "exit %d: %s" % (code, last_line(out))
    raise Failure(10, "unknown health check type %r" % kind)


def health_gate(checks, policy):
    """Every check must pass. Tries: interval × backoff^k between them, capped by the timeout."""
    deadline = time.monotonic() + float(policy["timeout"])
    delay = float(policy["interval"])
    waited = 0.0
    last = {}
    for attempt in range(int(policy["retries"])):
        step("gate", "%d/%d" % (attempt + 1, int(policy["retries"])))
        failing = []
        for check in checks:
            try:
                ok, detail = check_once(check)
            except (OSError, http.client.HTTPException, subprocess.TimeoutExpired) as exc:
                ok, detail = False, "%s: %s" % (exc.__class__.__name__, exc)
            if not ok:
                failing.append("%s (%s)" % (check["name"], detail))
        if not failing:
            return True, waited, attempt + 1, ""
        last = failing
        remaining = deadline - time.monotonic()
        if attempt + 1 == int(policy["retries"]) or remaining <= 0:
            break
        pause = min(delay, remaining)
        time.sleep(pause)
        waited += pause
        delay *= float(policy["backoff"])
    return False, waited, attempt + 1, "; ".join(last)


# --- the apply -------------------------------------------------------------------------

def write_state(name, data):
    write_atomic(os.path.join(STATE, name), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(),
                 "0644", "root:root")


PUSHED_FROM = "pushed-from.json"
KEEP_PUSHED_FROM = 32


def record_pushed_from():
    """Step 0: the address this push's SSH connection came from (sshd's SSH_CONNECTION) and
    when, kept per address (the 32 most recent): `dynia plan` reads it back and names the
    addresses a narrowed firewall.admin_ranges would lock out (a CI runner, a colleague), not
    only the machine that pushes now. Unknown (no SSH_CONNECTION: sudo or su) → nothing."""
    address = (os.environ.get("SSH_CONNECTION") or "").split(" ")[0]
    if address.startswith("::ffff:"):
        address = address[len("::ffff:"):]
    if not address:
        return
    try:
        with open(host_path(STATE + "/" + PUSHED_FROM)) as f:
            seen = json.load(f)
        seen = {a: t for a, t in seen.items() if isinstance(a, str) and isinstance(t, str)}
    except (OSError, ValueError, AttributeError):
        seen = {}  # missing or mangled: start again (it is advice, never a gate)
    seen[address] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_state(PUSHED_FROM, dict(sorted(seen.items(), key=lambda kv: kv[1])[-KEEP_PUSHED_FROM:]))


def read_applied():
    """The node's record of what was applied; a missing or mangled one counts as nothing applied.
    "run" ({layer: true|false}, the run state each service layer was last applied with) is
    missing from records written before it existed, and a mangled one is as good as missing:
    both read as {}, every layer's run state unknown."""
    try:
        with open(host_path(STATE + "/applied.json")) as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("layers"), dict):
        return {"configVersion": 0, "layers": {}, "run": {}}
    if not isinstance(data.get("run"), dict):
        data["run"] = {}
    return data


def recorded_run(applied, layer):
    """True/False as last applied, None when unknown (never recorded, or not a boolean)."""
    value = applied["run"].get(layer)
    return value if isinstance(value, bool) else None


def reload_all(bundle, components):
    done = []
    for component in components:
        command = bundle["reload"].get(component)
        if not command:
            continue
        code, out = run(command)
        if code != 0:
            return done, "reload %s failed: %s" % (component, start_failure(bundle, component, out))
        done.append(component)
    return done, ""


PULL_ERROR = re.compile(r"error|denied|not found|unknown|unauthori|refused|failed|no such|timeout", re.I)


def start_failure(bundle, component, out):
    """Why a component did not start, in one line. A service whose image is not on the node
    after its start failed could not pull it: compose's last line then only says a container
    was not found, so name the image and the engine's pull error (the first error line that
    names the image's repository), else the output's last line."""
    images = (bundle.get("images") or {}) if component == bundle["layer"] else {}
    for image, present in sorted(images.items()):
        if run(present)[0] == 0:
            continue
        return pull_failure(image, out)
    return last_line(out)


# What registries answer a pull without (valid) credentials, as docker and podman print it.
AUTH_ERROR = re.compile(r"unauthori[sz]ed|authentication required|access denied|access to the resource is denied|"
                        r"no basic auth credentials|invalid username/password", re.I)


def registry_of(image):
    """The registry an image reference names (its first part when that is a host), else Docker Hub."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def pull_failure(image, out):
    """One line: the image, the engine's pull error (the first error line naming the image's
    repository, else the output's last line) and, when the registry refused the credentials or
    asked for some, the registry's name: that is what the operator fixes (spec `registries:`)."""
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    name = repository.rsplit("/", 1)[-1]
    lines = [l.strip() for l in out.splitlines() if name in l and PULL_ERROR.search(l)]
    detail = lines[0][:300] if lines else last_line(out)
    if AUTH_ERROR.search(out):
        return "image %s could not be pulled: registry %s refused the pull (credentials missing or wrong): %s" % (
            image, registry_of(image), detail)
    return "image %s could not be pulled: %s" % (image, detail)


def prefetch(bundle):
    """A service layer on a node where it does not run: pull its images now (each unless present),
    so a failover starts it without a registry. Returns the problem, or ""."""
    for image, command in sorted((bundle.get("prefetch") or {}).items()):
        code, out = run(command)
        if code != 0:
            return "prefetch %s failed: %s" % (bundle["layer"], pull_failure(image, out))
    return ""


# --- the protocol, one step each (DESIGN §5) --------------------------------------------

def compare(bundle):
    """Step 1: the files to write and the files to remove. A file counts as changed when the
    node differs from the bundle, or when this layer's record does not hold it yet: a run
    killed after the rename but before the stamp must reload on the next run."""
    recorded = read_applied()["layers"].get(bundle["layer"])
    recorded = recorded if isinstance(recorded, dict) else {}
    changed = []
    for f in bundle["files"]:
        want = (f["sha256"], f["mode"], f["owner"])
        entry = recorded.get(f["target"])
        stamped = isinstance(entry, dict) and (entry.get("sha256"), entry.get("mode"), entry.get("owner")) == want
        if bundle.get("force") or current(f["target"]) != want or not stamped:
            changed.append(f)
    removed = [t for t in bundle.get("remove", []) if os.path.exists(host_path(t))]
    # `prune`: a directory only this layer writes (a service's secret slots). What the layer's
    # record holds there and the bundle no longer carries (a secret the spec dropped) goes.
    prune, carried = bundle.get("prune"), {f["target"] for f in bundle["files"]}
    if prune:
        removed += [t for t in sorted(recorded) if t.startswith(prune) and t not in carried
                    and t not in removed and os.path.exists(host_path(t))]
    return changed, removed


def placement(bundle):
    """Step 1, for a service layer: {"want", "had"} when its run state on this node must be
    applied (it differs from the record, the record does not know it, or the push is forced),
    else None. Infra and removals carry no run state."""
    want = bundle.get("run")
    if want is None:
        return None
    had = recorded_run(read_applied(), bundle["layer"])
    if had is want and not bundle.get("force"):
        return None
    return {"want": want, "had": had}


def affected_components(bundle, changed, removed, moving=None):
    """What must reload (or start, or stop), in the bundle's component order."""
    affected = []
    for component in [f["component"] for f in changed] + \
            [bundle.get("removeComponents", {}).get(t) for t in removed] + \
            [bundle["layer"] if moving else None]:
        if component and component not in affected:
            affected.append(component)
    order = bundle.get("componentOrder", [])
    return sorted(affected, key=lambda c: order.index(c) if c in order else len(order))


def stop_removed(bundle, affected, stopped):
    """Step 3, first for a removal: stop each component whose files this bundle removes (a
    removed service), while its files still exist. `removeCommands` names, per component, how
    to stop it, whether it runs, and how to restart it; what ran before the stop is appended to
    `stopped` (also when the stop fails half-way) so a rollback restarts exactly that."""
    for component in affected:
        commands = bundle.get("removeCommands", {}).get(component)
        if not commands:
            continue
        if run(commands["running"])[0] == 0:
            stopped.append(component)
        code, out = run(commands["stop"])
        if code != 0:
            raise Failure(40, "stop %s failed: %s" % (component, last_line(out)))


def restart_stopped(bundle, stopped):
    """Undo stop_removed once the files are restored: start what ran, from its restored files."""
    problems = []
    for component in stopped:
        code, out = run(bundle["removeCommands"][component]["restart"])
        if code != 0:
            problems.append("restart %s failed: %s" % (component, last_line(out)))
    return "; ".join(problems)


def write_files(changed, removed, lockdown):
    """Step 3: unlock, write each file atomically (content checked against its sha256), remove."""
    for f in changed:
        path = host_path(f["target"])
        if lockdown:
            set_immutable(path, False)
        content = base64.b64decode(f["content"])
        if hashlib.sha256(content).hexdigest() != f["sha256"]:
            raise Failure(10, "bundle is corrupt: %s does not match its sha256" % f["target"])
        write_atomic(f["target"], content, f["mode"], f["owner"])
    for t in removed:
        if lockdown:
            set_immutable(host_path(t), False)
        os.unlink(host_path(t))


def validate(bundle, affected):
    """Step 4: the component's own validator on the new files, before anything reloads."""
    step("validate")
    for component in affected:
        command = bundle.get("validate", {}).get(component)
        if command:
            code, out = run(command)
            if code != 0:
                raise Failure(20, "validation failed: %s: %s" % (component, last_line(out)))


def reload_affected(bundle, components, moving):
    """Step 5: reload each component in order. The service layer follows its run state: its
    reload (which starts it) only where it should run; where it should not, it is stopped when
    the run state changes and left alone otherwise (a new compose file does not start it).
    Returns (reloaded, stopped, problem)."""
    step("reload")
    reloaded, stopped = [], []
    for component in components:
        if component == bundle["layer"] and bundle.get("run") is False:
            problem = prefetch(bundle)
            if problem:
                return reloaded, stopped, problem
            if moving:
                code, out = run(bundle["stop"][component])
                if code != 0:
                    return reloaded, stopped, "stop %s failed: %s" % (component, last_line(out))
                stopped.append(component)
            continue
        done, problem = reload_all(bundle, [component])
        reloaded += done
        if problem:
            return reloaded, stopped, problem
    return reloaded, stopped, ""


def roll_back(bundle, affected, entries, reason, stopped=(), moving=None):
    """Step 7, failed: restore the files, reload (or stop what is new, or restart what a removal
    stopped, or put the service layer back in the run state it had), mark the node degraded."""
    step("rollback")
    undo = undo_actions(bundle, affected, entries, moving)
    # What ends stopped is stopped before the restore, while the files it was started from exist
    # (a compose project is found through its compose file, which the restore may delete).
    for component in reversed(affected):
        if undo.get(component) == "stop":
            run(bundle["stop"][component])
    restore(entries, bool(bundle.get("lockdown")))
    roll_back_components(bundle, affected, undo, stopped)
    write_state("degraded", {"reason": reason, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             "configVersion": bundle["configVersion"], "layer": bundle["layer"]})


def stamp(bundle, changed=True):
    """Step 7, passed: applied.json, re-lock, clear the degraded marker."""
    record_applied(bundle, changed)
    if bundle.get("lockdown"):
        for f in bundle["files"]:
            set_immutable(host_path(f["target"]), True)
    degraded = host_path(STATE + "/degraded")
    # A partial push proves one slot, not the change whose failed gate left the marker.
    if os.path.exists(degraded) and not bundle.get("partial"):
        os.unlink(degraded)


def degraded_layer():
    """The layer whose failed push left the degraded marker (None: no marker, or unreadable)."""
    try:
        with open(host_path(STATE + "/degraded")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data.get("layer") if isinstance(data, dict) else None


def apply(bundle):
    started = time.monotonic()
    lockdown = bool(bundle.get("lockdown"))
    if bundle.get("partial") and not isinstance(read_applied()["layers"].get(bundle["layer"]), dict):
        raise Failure(10, "a partial push of %s, which was never applied on this node (run a full push first)"
                      % bundle["layer"])
    changed, removed = compare(bundle)
    report = {"node": bundle["node"], "layer": bundle["layer"], "configVersion": bundle["configVersion"],
              "changed": [f["target"] for f in changed], "removed": removed, "reloaded": [],
              "healthWaitSeconds": 0.0, "healthAttempts": 0}
    done = lambda status, **more: dict(report, status=status, seconds=round(time.monotonic() - started, 3), **more)  # noqa: E731
    moving = placement(bundle)
    if moving:
        report["run"] = moving
    if not changed and not removed and not moving:
        if degraded_layer() == bundle["layer"]:
            # Rolled back from a failed push of this layer, and these files are what it holds:
            # prove them healthy before the marker goes (nothing to write, reload or restore).
            healthy, waited, attempts, detail = health_gate(bundle.get("health", []), bundle["policy"])
            report.update(healthWaitSeconds=round(waited, 3), healthAttempts=attempts)
            if not healthy:
                return 30, done("degraded", reason="health gate failed after %d tries: %s" % (attempts, detail))
            stamp(bundle, changed=False)
            return 0, done("unchanged")
        record_applied(bundle, changed=False)
        return 0, done("unchanged")
    targets = [f["target"] for f in changed] + removed
    step("backup")
    entries = make_backup(bundle, targets) if targets else []                    # step 2
    affected = affected_components(bundle, changed, removed, moving)
    # A component whose files go is stopped (before they go), never reloaded.
    removing = [c for c in affected if c in bundle.get("removeCommands", {})]
    stopped = []
    try:
        stop_removed(bundle, removing, stopped)                                   # step 3
        report["stopped"] = removing
        write_files(changed, removed, lockdown)
        validate(bundle, affected)                                                # step 4
    except (Failure, OSError) as exc:
        restore(entries, lockdown)
        problem = restart_stopped(bundle, stopped)
        code, reason = (exc.code, exc.reason) if isinstance(exc, Failure) else (40, "write failed: %s" % exc)
        reason += ("; " + problem) if problem else ""
        return code, done("invalid" if code == 20 else "error", reason=reason)
    report["reloaded"], placed, problem = reload_affected(bundle, [c for c in affected if c not in removing],
                                                                  moving)  # step 5
    report["stopped"] = removing + placed
    if problem:
        roll_back(bundle, affected, entries, problem, stopped, moving)
        return 30, done("rolled-back", reason=problem)
    healthy, waited, attempts, detail = health_gate(bundle.get("health", []), bundle["policy"])  # step 6
    report.update(healthWaitSeconds=round(waited, 3), healthAttempts=attempts)
    if not healthy:
        reason = "health gate failed after %d tries: %s" % (attempts, detail)
        roll_back(bundle, affected, entries, reason, stopped, moving)
        return 30, done("rolled-back", reason=reason)
    stamp(bundle)
    return 0, done("applied")


def undo_actions(bundle, affected, entries, moving=None):
    """How a rollback leaves each affected component: "reload" (runs again from its restored
    files), "stop" (ends stopped: it did not exist before this apply, or it is the service layer
    and did not run here before), "leave" (a service layer that neither ran nor was started),
    "restart" (a removal's, restarted if the removal stopped it).
    The service layer goes back to its recorded run state; unknown (an older record) counts as
    running where it should run, unless its files are new."""
    existed = {e["target"]: e["existed"] for e in entries}
    component_files = {}
    for f in bundle["files"]:
        component_files.setdefault(f["component"], []).append(f["target"])
    actions = {}
    for component in affected:
        if component in bundle.get("removeCommands", {}):
            actions[component] = "restart"
            continue
        brand_new = not any(existed.get(t, True) for t in component_files.get(component, []))
        stop = bundle.get("stop", {}).get(component)
        if component == bundle["layer"] and bundle.get("run") is not None:
            want = bundle["run"]
            had = moving["had"] if moving else want
            ran = (had is True or (had is None and want)) and not brand_new
            actions[component] = "reload" if ran else ("stop" if want else "leave")
        else:
            actions[component] = "stop" if brand_new and stop else "reload"
    return actions


def roll_back_components(bundle, affected, undo, stopped=()):
    """After the restore: reload what was restored (a service layer that ran before restarts
    from its restored files); restart what a removal stopped (what did not run stays stopped).
    Stops happened before the restore (roll_back)."""
    # Undo in the reverse order: what the forward order freed first is taken back last (HAProxy
    # lets go of :80 before a restored package Caddyfile binds it again).
    for component in reversed(affected):
        action = undo.get(component)
        if action == "restart":
            if component in stopped:
                restart_stopped(bundle, [component])
        elif action == "reload":
            reload_all(bundle, [component])


def node_version(applied, bundle, changed):
    """The node's config version once this bundle is recorded. Only a push that changed the node
    sets it: an unchanged layer still carries the version it was last applied with, which would
    set the node back after a newer layer (admin → api → web), and a layer that was only compared
    proves nothing about the rest of the node (a roll stopped before its changed layer, then a
    revert, re-renders the older version)."""
    had = applied.get("configVersion")
    if isinstance(had, int) and not isinstance(had, bool) and not changed:
        return had
    return bundle["configVersion"]


def record_applied(bundle, changed=True):
    applied = read_applied()
    layer, want = bundle["layer"], bundle.get("run")
    manifest = {f["target"]: {"sha256": f["sha256"], "mode": f["mode"], "owner": f["owner"],
                              "component": f["component"]} for f in bundle["files"]}
    layers, runs = applied["layers"], applied["run"]  # read_applied always gives both dicts
    version = node_version(applied, bundle, changed)
    if bundle.get("partial"):
        # One slot of the layer (a certificate renewal): the layer's other files keep their
        # record, and the node keeps its config version — nothing else of the render was applied.
        manifest = dict(layers.get(layer) or {}, **manifest)
        version = applied.get("configVersion", version)
    if layers.get(layer) == manifest and applied.get("configVersion") == version \
            and (want is None or runs.get(layer) is want):
        return
    if not manifest and bundle.get("remove"):
        # A removal: the layer holds nothing on this node any more, so the record forgets it.
        if layer not in layers and layer not in runs:
            return
        layers.pop(layer, None)
        runs.pop(layer, None)
    else:
        layers[layer] = manifest
        if want is not None:
            runs[layer] = want
    applied["configVersion"] = version
    applied["node"] = bundle["node"]
    write_state("applied.json", applied)


CLOUD_INIT_WAIT = 900  # seconds: a droplet's first boot installs packages; a hung cloud-init ends the wait


def outcome_line(bundle, code, report):
    """What one push did, for the node's log: layer, version, where it came from, the outcome,
    and the files, reloads and gate behind it. Names and counts only, as the report holds them."""
    origin = (os.environ.get("SSH_CONNECTION") or "").split(" ")[0]
    text = "push %s v%s%s: %s" % (bundle.get("layer"), bundle.get("configVersion"),
                                  " from " + origin if origin else "", report.get("status", "error"))
    details = []
    if report.get("changed") or report.get("removed"):
        details.append("%d changed, %d removed" % (len(report.get("changed") or []), len(report.get("removed") or [])))
    if report.get("reloaded"):
        details.append("reloaded " + ", ".join(report["reloaded"]))
    if report.get("healthAttempts"):
        details.append("gate %d tries, %.2f s" % (report["healthAttempts"], report.get("healthWaitSeconds") or 0))
    if code:
        details.append("exit %d" % code)
    text += " (%s)" % "; ".join(details) if details else ""
    if report.get("reason"):
        text += ": " + str(report["reason"])[:500]
    return " ".join(text.split())  # one line, whatever a reason held


def log_outcome(bundle, code, report):
    text = outcome_line(bundle, code, report)
    journal = host_path(JOURNAL_SOCKET)
    if os.path.exists(journal):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(("SYSLOG_IDENTIFIER=%s\nPRIORITY=%d\nMESSAGE=%s\n"
                             % (LOG_IDENTIFIER, 3 if code else 6, text)).encode(), journal)
            return
        except OSError:
            pass  # a journald that does not answer: the file then
    path = host_path(APPLY_LOG)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path) and os.path.getsize(path) > LOG_KEEP:
            os.replace(path, path + ".1")
        now = time.time()
        stamp_ = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06dZ" % int(now % 1 * 1e6)
        with open(path, "a") as f:
            f.write("%s %s\n" % (stamp_, text))
    except OSError:
        pass  # the log is a record, never a reason for a push to fail


def wait_for_cloud_init():
    """Step 0, on a real node only: wait until cloud-init has finished (packages installed and
    started), bounded. A droplet turns `active` while apt still runs; pushing then fails with
    `haproxy: not found`. Where there is no cloud-init (or a test root), nothing to wait for.
    Returns the seconds waited; raises Failure(40) when cloud-init outlives the bound."""
    if ROOT != "/" or not shutil.which("cloud-init"):
        return 0.0
    started = time.monotonic()
    try:
        # Exit 1/2 (finished with errors/warnings) still means finished: validation and the
        # gate judge what was installed.
        subprocess.run(["cloud-init", "status", "--wait"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, timeout=CLOUD_INIT_WAIT)
    except subprocess.TimeoutExpired:
        raise Failure(40, "cloud-init still running after %d s (see /var/log/cloud-init-output.log)"
                      % CLOUD_INIT_WAIT)
    return time.monotonic() - started


def main(stream):
    try:
        bundle = json.loads(stream.read())
        if not isinstance(bundle, dict):
            raise ValueError("not a JSON object")
        for key in ("node", "layer", "configVersion", "files", "policy"):
            bundle[key]
        run_state = bundle.get("run")
        if run_state is not None and not (isinstance(run_state, bool) and bundle["layer"] in bundle.get("stop", {})
                                          and bundle["layer"] in bundle.get("reload", {})):
            raise ValueError("run must be true or false, with the layer's reload and stop commands")
    except (ValueError, KeyError) as exc:
        sys.stderr.write("dynia apply: bad bundle (%s)\n" % exc)
        return 10
    os.makedirs(host_path(STATE), exist_ok=True)
    lock = open(host_path(STATE + "/.apply.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.stderr.write("dynia apply: %s: another apply is running on this node\n" % bundle["node"])
        return 40
    try:
        record_pushed_from()
        waited = wait_for_cloud_init()
        code, report = apply(bundle)
        report["cloudInitWaitSeconds"] = round(waited, 3)
    except Failure as exc:
        code, report = exc.code, {"status": "error", "reason": exc.reason}
    finally:
        lock.close()
    log_outcome(bundle, code, report)
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    # Out before the reason: the provider merges both streams, and the reason must end them.
    sys.stdout.flush()
    if code:
        sys.stderr.write("dynia apply: %s %s: %s\n" % (bundle["node"], bundle["layer"], report.get("reason")))
    return code


if __name__ in ("__main__", "dynia-apply"):
    sys.exit(main(sys.stdin.buffer))
