"""devlab — a running, applied lab cluster for contributors to work against (as root).

    python -m tests.devlab up       [-C examples] [--cluster lab]
    python -m tests.devlab status   [-C examples] [--cluster lab] [--json]
    python -m tests.devlab down     [-C examples] [--cluster lab]

`up` brings up the lab nodes of the project's local-provider cluster (default: the repo's
examples/clusters/lab.yaml) and applies provision → infra → apps with the real phase programs
on LabEngineDouble (tests/engine/lab_double.py: the Pulumi CLI cannot run on these machines).
It drives dynia's own `Engine.up` with only the Pulumi stack stood in for, so the project's
`.dynia/` ends up exactly as after `dynia up`: the cache (`cache/<cluster>/outputs.json`,
`applied.json`) written by the engine's own methods, the lab's certificate in `secrets/`, the
nodes, their SSH key and pinned host keys in the local provider's lab directory
(`.dynia/lab/<cluster>/`). The product's operating commands then work from the project
directory as against droplets (`dynia -C examples plan --offline --cluster lab`, `status`,
`drift-check`, `repair`). `up` on a running lab re-applies (every push runs again; unchanged
nodes answer "unchanged" and reload nothing).

`down` kills every process of the nodes, removes every mount, veth, namespace and the lab
directory, and the cache that described the nodes; it also cleans up after a half-failed `up`.
The stand-in for each phase stack's outputs (what `pulumi stack output` would show) lives in
the lab directory too (`engine-double/`, 0600: it holds the certificate), so it goes with it.

This is contributor tooling, not part of the product: it lives under tests/ and needs the lab
tools (`bash .ci/test` installs them). The lab takes the spec's subnet (10.213.0.0/24 for the
example) and claims it on this machine (dynia.providers.lab_subnets): the lab tests take other
free subnets, so they run beside it.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import dynia
from dynia import providers
from dynia.errors import DyniaError
from dynia.spec.load import Cluster, load_cluster
from dynia.state.store import Project, cluster_lock

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PROJECT = REPO / "examples"
DOUBLE_STATE = "engine-double"            # inside the lab directory: the stand-in stacks' outputs
CLIENT_PEM = "origin-pull-client.pem"     # inside the lab directory: what curl presents as Cloudflare would
SECRET_OUTPUTS = ("originPem", "statsCredentials")  # what Pulumi would hand back marked secret
ME = "python -m tests.devlab"
# What the lab needs from Python, from the repo root: dynia installed editable (the checkout's
# dynia/ shadows any other install when run from there, and only the editable one maps
# dynia.stacks onto stacks/) with its test extras (podman-compose). The README says the same.
INSTALL = "sh .ci/lab-install && . .venv/bin/activate"
# The lab's programs, by the Debian package that brings each.
DEBIAN = {"ip": "iproute2", "nsenter": "util-linux", "unshare": "util-linux", "sshd": "openssh-server",
          "ssh-keygen": "openssh-client", "haproxy": "haproxy", "caddy": "caddy", "keepalived": "keepalived",
          "podman": "podman", "busybox": "busybox-static", "losetup": "mount", "mkfs.ext4": "e2fsprogs",
          "fsck.ext4": "e2fsprogs"}


def _lab_error(message: str, hint: str) -> DyniaError:
    return DyniaError("provider", message, hint)


# --- the stand-in for the Pulumi stacks: Engine.up runs for real on top of it ------------------

@dataclass
class _Output:
    """pulumi.automation.OutputValue's shape: what Engine reads from a stack's outputs."""
    value: Any
    secret: bool = False


def _reporting_double(references: dict, progress: Callable[[str], None], phase: str):
    """LabEngineDouble that reports each command it ran (the engine's progress lines)."""
    from tests.engine.lab_double import LabEngineDouble

    class Reporting(LabEngineDouble):
        def _record(self, args, status, output):
            progress(f"{phase}: {args.name} {'done' if status == 0 else f'FAILED (exit {status})'}")
            super()._record(args, status, output)

    return Reporting(references)


class DoubleStack:
    """One phase's stack, stood in for: `up` runs the phase program on the engine double, the
    outputs are kept as the stack would keep them (only after a successful update)."""

    def __init__(self, engine: "DevlabEngine", phase: str):
        self.engine, self.phase = engine, phase
        self.path = engine.state_dir / f"{engine.cluster.name}-{phase}.json"

    def raw_outputs(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def outputs(self) -> dict[str, _Output]:
        return {k: _Output(v, k in SECRET_OUTPUTS) for k, v in self.raw_outputs().items()}

    def refresh(self, color=None):
        """Nothing to refresh: the stand-in keeps no resources, and what a refresh would read
        back (a node's size after dynia's resize roll) the provision program reads from the lab
        itself on its next run (dynia.providers.lab_droplets)."""
        return None

    def up(self, on_event=None, color=None, continue_on_error=None):
        from dynia.nodes.push_errors import push_error
        from dynia.stacks import program_module
        from dynia.state.store import write_json
        from tests.engine.lab_double import run_phase

        name = self.engine.cluster.name
        references = {f"{name}-provision": self.engine.stack("provision").raw_outputs()}
        double = _reporting_double(references, self.engine.on_progress, self.phase)
        module = program_module(self.phase)
        # As the engine's own program does: the inputs are built inside the program run (the
        # secrets become Outputs of this run, the SSH key is read once provision made it).
        program = SimpleNamespace(program=lambda _: module.program(self.engine.phase_inputs(self.phase)))
        outputs, error = run_phase(program, SimpleNamespace(cluster=name), self.phase, double)
        if double.failures:
            failure = double.failures[0]
            if failure.resource.endswith("-push"):
                raise push_error(failure.resource, failure.output, failure.exit_status, name)
            raise _lab_error(f"{failure.resource} failed (exit {failure.exit_status}): "
                             f"{failure.output.strip()[-400:]}",
                             f"`{ME} down`, then `{ME} up` again (the lab tools: bash .ci/test)")
        if error is not None:
            raise error  # Engine._run turns it into a typed engine error
        self.engine.state_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.path, outputs, mode=0o600)
        return SimpleNamespace(outputs={k: _Output(v, k in SECRET_OUTPUTS) for k, v in outputs.items()})


def _engine_class():
    from dynia.engine.automation import Engine

    class _DevlabEngine(Engine):
        """dynia's Engine with the Pulumi stacks stood in for: stats credentials, layers,
        reserved-IP record, the cache writes and the error typing are the engine's own."""

        def __init__(self, cluster: Cluster, state_dir: Path, **kw):
            super().__init__(cluster, **kw)
            self.state_dir = state_dir

        def stack(self, phase: str):
            if phase not in self._stacks:
                self._stacks[phase] = DoubleStack(self, phase)
            return self._stacks[phase]

    return _DevlabEngine


DevlabEngine = None  # the class, built on first use (it subclasses the engine, which loads pulumi)


# --- the lab ---------------------------------------------------------------------------------

@dataclass
class DevLab:
    project: Project
    name: str

    @property
    def cluster(self) -> Cluster:
        return load_cluster(self.project, self.name)

    @property
    def lab_dir(self) -> Path:
        """The local provider's lab directory: where the product looks for the key and host keys."""
        cluster = self.cluster
        lab_dir = providers.of(cluster.spec).lab_dir(self.project, self.name)
        if lab_dir is None:
            raise DyniaError("config", f"cluster {self.name} does not run on lab nodes "
                             f"(provider kind {cluster.spec.provider.kind})",
                             "pick a cluster whose provider is `kind: local` (examples/clusters/lab.yaml)")
        return lab_dir

    def lab(self):
        """The lab as brought up (lab.json), or as it would be planned from the spec."""
        from dynia.nodes.lab import STATE_FILE, Lab

        if (self.lab_dir / STATE_FILE).exists():
            return Lab.load(self.lab_dir)
        spec = self.cluster.spec
        return Lab.plan(self.lab_dir, spec.provider.vpc_ip_range, spec.nodes)

    def _preflight(self) -> None:
        from dynia.nodes.lab import missing_tools

        if os.geteuid() != 0:
            raise DyniaError("config", "the lab needs root (network and mount namespaces)", f"sudo {ME} up")
        if importlib.util.find_spec("dynia.stacks") is None:
            raise DyniaError("config", f"dynia.stacks is not importable: {dynia.__file__} is not an editable install "
                             "of this checkout (run from the repo root, its dynia/ comes first)",
                             f"install it as the lab needs, from the repo root: {INSTALL}")
        missing = missing_tools()
        if missing:
            debian = sorted({DEBIAN[b] for b in missing if b in DEBIAN})
            packages = f" (Debian packages: {' '.join(debian)})" if debian else ""
            raise DyniaError("config", f"missing on this machine: {', '.join(missing)}{packages}",
                             f"install everything the lab needs, from the repo root: {INSTALL}")
        lab = self.lab()
        for dev, address in _ipv4_addresses():
            if address == lab.gateway and dev != lab.bridge:
                raise _lab_error(f"another lab holds {lab.subnet} (bridge {dev} has {address})",
                                 "bring that one down first (`python -m dynia.nodes.lab down DIR`, or "
                                 f"`{ME} down` in its project), or give this cluster another provider.vpc_ip_range")

    def up(self, say: Callable[[str], None]) -> dict:
        """Bring the nodes up and apply every phase, as `dynia up` would; returns `describe()`."""
        from dynia.state import secrets
        from dynia.nodes.gather import vip_holder
        from dynia.engine.session import targets

        global DevlabEngine
        self._preflight()
        if DevlabEngine is None:
            DevlabEngine = _engine_class()
        started = time.monotonic()
        with cluster_lock(self.project, self.name):  # as `dynia up`: no repair runs meanwhile
            cluster = self.cluster
            # The stats credentials in .dynia/secrets before the first provision (which then keeps
            # the same ones in its stack): commands that push without the engine (`dynia repair`)
            # find the values the nodes have, and need not read the state through Pulumi, which
            # cannot run here. On droplets this is a cluster made before the state kept them.
            secrets.ensure(self.project, self.name)
            nodes = targets(cluster)  # a re-run rolls with the live holder last, as the engine session
            holder = vip_holder(nodes) if nodes and self.running() else None
            engine = DevlabEngine(cluster, self.lab_dir / DOUBLE_STATE, holder=holder, on_progress=say)
            engine.up()
        self._write_client_certificate()
        say(f"applied provision → infra → apps in {time.monotonic() - started:.0f} s")
        return self.describe()

    def _write_client_certificate(self) -> None:
        path = self.lab_dir / CLIENT_PEM
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            # What the lab's "Cloudflare" presents: the cluster's own client certificate.
            f.write(providers.of(self.cluster.spec).origin_pull_client(self.project, self.name))
        os.replace(tmp, path)

    def running(self) -> bool:
        lab = self.lab()
        return all(lab._netns_inode(n) is not None for n in lab.nodes)

    def down(self) -> list[str]:
        """Every process, mount, veth and namespace of the nodes, the lab directory and the
        cache that described them; also after a half-failed up. Returns what is left (nothing)."""
        from dynia.nodes.lab import LabError

        if os.geteuid() != 0:
            raise DyniaError("config", "the lab needs root (network and mount namespaces)", f"sudo {ME} down")
        with cluster_lock(self.project, self.name):
            lab = self.lab()
            try:
                lab.down()
            except LabError as exc:
                raise _lab_error(f"lab teardown failed: {exc}", f"run `{ME} down` again") from None
            cache = self.project.cache_dir(self.name)
            # The nodes these files describe are gone: without them `status` says "nothing
            # provisioned" and the next up starts from a first apply, as on fresh droplets.
            for name in ("outputs.json", "applied.json", "certificate.json", "known_hosts"):
                (cache / name).unlink(missing_ok=True)
            shutil.rmtree(cache / "content", ignore_errors=True)
            if cache.is_dir() and not any(cache.iterdir()):
                cache.rmdir()
            left = leftovers(lab)
        if left:
            raise _lab_error(f"left behind after down: {'; '.join(left)}", f"run `{ME} down` again")
        return left

    # --- what a contributor needs to reach it ---------------------------------------------

    def describe(self) -> dict:
        lab = self.lab()
        spec = self.cluster.spec
        project_arg = _shown(self.project.root)
        held = [n.id for n in lab.nodes if lab._netns_inode(n) is not None and self._holds_vip(lab, n)]
        ssh = ["ssh", "-i", str(lab.key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
               "-o", "StrictHostKeyChecking=yes"]
        return {
            "cluster": self.name, "project": str(self.project.root), "lab_dir": str(lab.dir),
            "running": self.running(), "vip": lab.vip, "vip_holder": held,
            "nodes": {n.id: {"ip": n.ip, "up": lab._netns_inode(n) is not None,
                             "ssh": shlex.join([*ssh, f"root@{n.ip}"]),
                             "enter": shlex.join([*lab.enter_argv(n), "bash"])} for n in lab.nodes},
            # The lab's certificate is self-signed (dynia.tls): -k. HAProxy asks for the origin-pull
            # client certificate Cloudflare presents (origin mode): the lab's own, written by up().
            # (one curl, for a service's first domain: its others reach the same site)
            "services": {s: {"domains": svc.domains, "placement": svc.placement,
                             "curl": (f"curl -k --cert {lab.dir / CLIENT_PEM} --resolve {svc.domains[0]}:443:{lab.vip} "
                                      f"https://{svc.domains[0]}/"
                                      if svc.domains else None)}
                         for s, svc in sorted(spec.services.items())},
            "dynia": [f"dynia -C {project_arg} {cmd} --cluster {self.name}"
                      for cmd in ("plan --offline", "status", "drift-check", "repair", "infra verify")],
            "down": f"{ME} -C {project_arg}" + (f" --cluster {self.name}" if self.name != "lab" else "") + " down",
        }

    @staticmethod
    def _holds_vip(lab, node) -> bool:
        out = lab.run(node.id, "ip -br -4 addr show eth0", check=False).stdout.decode()
        return f" {lab.vip}/" in out


def _shown(path: Path) -> str:
    """The project as the contributor typed it: relative when under the working directory."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else str(path)


def _ipv4_addresses() -> list[tuple[str, str]]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    pairs = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "inet":
            pairs.append((parts[1], parts[3].split("/")[0]))
    return pairs


def leftovers(lab) -> list[str]:
    """What of this lab still exists on the machine (empty after a clean down)."""
    left = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    left += [f"netns {n.netns}" for n in lab.nodes if n.netns in netns]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    left += [f"link {name}" for name in {lab.bridge, *(n.veth for n in lab.nodes)}
             if f" {name}:" in links or f" {name}@" in links]
    with open("/proc/self/mountinfo") as f:
        left += [f"mount {line.split()[4]}" for line in f if str(lab.dir) in line.split()[4]]
    if lab.dir.exists():
        left.append(f"directory {lab.dir}")
    return left


# --- the command -------------------------------------------------------------------------------

def print_description(d: dict, out=print) -> None:
    state = "running" if d["running"] else "not running"
    out(f"lab cluster {d['cluster']} ({d['project']}): {state}")
    out(f"  VIP {d['vip']}" + (f", held by {', '.join(d['vip_holder'])}" if d["vip_holder"] else ""))
    for node, n in d["nodes"].items():
        out(f"  {node:<12} {n['ip']:<15} {'up' if n['up'] else 'down'}")
    if not d["running"]:
        out(f"bring it up: {d['down'].removesuffix(' down')} up")
        return
    out("reach a node (SSH, as dynia does; or enter its namespaces directly):")
    for node, n in d["nodes"].items():
        out(f"  {n['ssh']}")
    first = next(iter(d["nodes"].values()))
    out(f"  {first['enter']}")
    out("services, HTTPS through the VIP (HAProxy → Caddy → app; the certificate is self-signed):")
    for name, s in d["services"].items():
        out(f"  {name:<8} {s['curl'] or '(no domain)'}" + ("   # runs on the VIP holder only"
                                                            if s["placement"] == "active-only" else ""))
    out("operate it with the product:")
    for cmd in d["dynia"]:
        out(f"  {cmd}")
    out(f"tear it down: {d['down']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=ME, description=__doc__.split("\n\n")[0])
    ap.add_argument("-C", "--project", type=Path, default=DEFAULT_PROJECT,
                    help="project directory holding clusters/ (default: the repo's examples/)")
    ap.add_argument("--cluster", default="lab", help="a cluster with `provider: {kind: local}` (default: lab)")
    ap.add_argument("--json", action="store_true", help="print the lab's description as JSON")
    ap.add_argument("--debug", action="store_true", help="on error, print the trace too")
    ap.add_argument("command", choices=("up", "down", "status"))
    args = ap.parse_args(argv)
    lab = DevLab(Project(args.project.resolve()), args.cluster)
    progress = (lambda line: print(line, file=sys.stderr)) if args.json else print
    try:
        if args.command == "up":
            d = lab.up(progress)
        elif args.command == "down":
            lab.down()
            progress(f"lab cluster {args.cluster} is down: no namespace, mount, veth or process left")
            return 0
        else:
            d = lab.describe()
    except DyniaError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc.message}", file=sys.stderr)
        print(f"hint: {exc.hint}", file=sys.stderr)
        if args.command == "up":
            print(f"resume: {ME} up   (or clean up: {ME} down)", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(d, indent=2, sort_keys=True))
    else:
        print_description(d)
    return 0 if args.command != "status" or d["running"] else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130)
