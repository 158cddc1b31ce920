"""Reading nodes back, measured on real lab nodes; prints medians and ratios (issue 10).

    flock /tmp/dynia-lab.lock python tests/bench/bench_nodes.py [--runs 7] [--skip-ansible]

As root, with the lab tools (bash .ci/test). Brings the example lab cluster up with the
contributor lab (`python -m tests.devlab`) twice — once with its first node only, once with all
three — each in a scratch copy of examples/, and runs the installed console script against it:

* `dynia status` and `dynia drift-check` on 3 nodes vs 1 node (parallel, one SSH round trip
  per node: the ratio should stay ≤ 1.3);
* on the same 3 nodes, dynia `drift-check` vs Ansible collecting the same facts: `ansible-core`
  from PyPI in a throwaway virtual environment, a `stat` (sha256 checksum, mode, owner) of every
  managed path plus the node's state files, over SSH with the lab's key. Ansible runs as a user
  gets it (its default ControlPersist keeps the SSH connections between runs; no pipelining).
  The literal ad-hoc `ansible all -m stat` of a single path is printed too, for scale.

Each figure is the median of --runs runs (at least 5). Not collected by pytest: timings belong
in reports, not in assertions. The labs are always brought down, also when a run fails.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DYNIA = Path(sys.executable).parent / "dynia"      # the installed console script
ANSIBLE_CORE = "ansible-core"                       # newest from PyPI: the one a user would get
# exit codes that are answers, not failures (README "Exit codes"): 3 drift found, 4 unhealthy
ANSWERS = {"status": (0, 4), "drift-check": (0, 3)}


def run(argv: list[str], cwd: Path | None = None, env: dict | None = None, ok=(0,)) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    return proc


def median_wall(argv: list[str], runs: int, ok=(0,), env: dict | None = None) -> tuple[float, int]:
    """(median seconds, last exit code)."""
    times, code = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        code = run(argv, env=env, ok=ok).returncode
        times.append(time.perf_counter() - t)
    return statistics.median(times), code


def has_command(name: str) -> bool:
    return subprocess.run([str(DYNIA), *name.split(), "--help"], capture_output=True).returncode == 0


def project_copy(dest: Path, nodes: list[str] | None) -> Path:
    shutil.copytree(REPO / "examples", dest, ignore=shutil.ignore_patterns(".dynia", "deploy-config"))
    if nodes is not None:
        spec = dest / "clusters" / "lab.yaml"
        text = spec.read_text()
        line = "nodes: [misty-owl, brave-panda, calm-otter]\n"
        assert line in text, "examples/clusters/lab.yaml changed its node list: update the bench"
        spec.write_text(text.replace(line, f"nodes: [{', '.join(nodes)}]\n"))
    return dest


class DevLab:
    """`python -m tests.devlab` on one project copy: up on enter, always down on exit."""

    def __init__(self, root: Path):
        self.root = root

    def __enter__(self) -> dict:
        t = time.perf_counter()
        try:
            up = run([sys.executable, "-m", "tests.devlab", "-C", str(self.root), "--json", "up"], cwd=REPO)
        except SystemExit:
            self.__exit__()
            raise
        print(f"  (lab up and applied in {time.perf_counter() - t:.0f} s)")
        return json.loads(up.stdout)

    def __exit__(self, *exc) -> None:
        subprocess.run([sys.executable, "-m", "tests.devlab", "-C", str(self.root), "down"], cwd=REPO,
                       capture_output=True, timeout=300)


def dynia_timings(root: Path, runs: int) -> dict[str, float]:
    out = {}
    for cmd, ok in ANSWERS.items():
        if not has_command(cmd):
            print(f"  dynia {cmd}: not available (not registered in this build)")
            continue
        seconds, code = median_wall([str(DYNIA), "-C", str(root), cmd, "--cluster", "lab", "--json"], runs, ok)
        out[cmd] = seconds
        print(f"  dynia {cmd:<12} median {seconds * 1000:7.1f} ms  (exit {code})")
    return out


def read_paths(root: Path) -> list[str]:
    """What drift-check reads on a node: every managed path of the render, plus the state files."""
    from dynia.paths import PATHS
    from dynia.render.rendered import render_cluster
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    rendering = render_cluster(load_cluster(Project(root), "lab"))
    managed = sorted({path for node in rendering.files for path in rendering.manifest(node)})
    return managed + [PATHS.state(name) for name in ("applied.json", "degraded", "vrrp")]


def ansible_env(work: Path) -> tuple[Path, dict]:
    venv = work / "ansible-venv"
    print(f"  installing {ANSIBLE_CORE} from PyPI into a throwaway venv ({venv}) …")
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "-q", ANSIBLE_CORE])
    version = run([str(venv / "bin" / "ansible"), "--version"]).stdout.splitlines()[0]
    print(f"  {version}")
    home = work / "ansible-home"
    env = {**os.environ, "ANSIBLE_HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"}
    return venv, env


def ansible_inventory(work: Path, described: dict) -> Path:
    lab_dir = Path(described["lab_dir"])
    lines = ["[lab]"] + [f"{node} ansible_host={n['ip']}" for node, n in described["nodes"].items()]
    lines += ["[lab:vars]", "ansible_user=root", f"ansible_ssh_private_key_file={lab_dir / 'id_ed25519'}",
              f"ansible_ssh_common_args='-o UserKnownHostsFile={lab_dir / 'known_hosts'} -o StrictHostKeyChecking=yes'"]
    path = work / "inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def ansible_playbook(work: Path, paths: list[str]) -> Path:
    play = [{"hosts": "all", "gather_facts": False,
             "tasks": [{"name": "stat the managed paths and the state files",
                        "ansible.builtin.stat": {"path": "{{ item }}", "get_checksum": True,
                                                 "checksum_algorithm": "sha256"},
                        "loop": paths}]}]
    path = work / "stat.yml"
    path.write_text(json.dumps(play, indent=2))  # JSON is YAML
    return path


def main() -> None:
    global DYNIA
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--skip-ansible", action="store_true")
    ap.add_argument("--dynia", type=Path, default=DYNIA, help="the dynia executable (default: the console script)")
    args = ap.parse_args()
    DYNIA = args.dynia
    runs = max(args.runs, 5)
    if os.geteuid() != 0:
        sys.exit("lab nodes need root: run as root, under `flock /tmp/dynia-lab.lock`")
    if not DYNIA.exists():
        sys.exit(f"{DYNIA} is missing: pip install -e . into this interpreter's environment first")
    if not any(has_command(c) for c in ANSWERS):
        sys.exit("neither `dynia status` nor `dynia drift-check` is registered in this build: nothing to measure")

    # Every lab node runs on this machine: with fewer CPUs than nodes, the nodes' own work
    # (podman, hashing) competes for them, which droplets (a CPU each) do not.
    print(f"this machine: {os.cpu_count()} CPUs for every lab node; {DYNIA}")
    with tempfile.TemporaryDirectory(prefix="dynia-bench-nodes-") as tmp:
        work = Path(tmp)
        print(f"1 lab node (misty-owl), median of {runs}:")
        one = project_copy(work / "one", ["misty-owl"])
        with DevLab(one):
            single = dynia_timings(one, runs)
        print(f"3 lab nodes, median of {runs}:")
        three = project_copy(work / "three", None)
        venv = env = None
        if not args.skip_ansible:
            venv, env = ansible_env(work)  # installed before the lab is up: pip is not what is measured
        with DevLab(three) as described:
            triple = dynia_timings(three, runs)
            for cmd in triple:
                if cmd in single:
                    print(f"  ratio {cmd} 3 nodes / 1 node     {triple[cmd] / single[cmd]:.2f}  (expected ≤ 1.3)")
            if venv is not None:
                paths = read_paths(three)
                inventory = ansible_inventory(work, described)
                playbook = ansible_playbook(work, paths)
                ansible_s, _ = median_wall([str(venv / "bin" / "ansible-playbook"), "-i", str(inventory),
                                            str(playbook)], runs, env=env)
                adhoc_s, _ = median_wall([str(venv / "bin" / "ansible"), "all", "-i", str(inventory), "-m", "stat",
                                          "-a", f"path={paths[0]} checksum_algorithm=sha256"], runs, env=env)
                # Ansible at its fastest too: pipelining runs each module in one SSH exec (no temp file).
                piped_s, _ = median_wall([str(venv / "bin" / "ansible-playbook"), "-i", str(inventory),
                                          str(playbook)], runs, env={**env, "ANSIBLE_PIPELINING": "1"})
                print(f"  ansible-playbook stat ×{len(paths)} paths  median {ansible_s * 1000:7.1f} ms  (defaults)")
                print(f"  same, ANSIBLE_PIPELINING=1      median {piped_s * 1000:7.1f} ms")
                print(f"  ansible all -m stat (1 path)  median {adhoc_s * 1000:7.1f} ms")
                if "drift-check" in triple:
                    print(f"  ratio dynia drift-check / ansible   {triple['drift-check'] / ansible_s:.2f}  "
                          "(expected ≤ 0.3)")
                    print(f"  ratio dynia drift-check / ansible with pipelining   "
                          f"{triple['drift-check'] / piped_s:.2f}")


if __name__ == "__main__":
    main()
