"""Start-up and plan benchmarks, measured side by side in one run; prints medians and ratios.

    python tests/bench/bench_cli.py [--runs 15]

Not collected by pytest: timings belong in reports, not in assertions.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def median_wall(argv: list[str], runs: int, cwd: Path | None = None) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, capture_output=True)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            sys.exit(f"{argv} failed: {proc.stderr.decode()[-500:]}")
    return statistics.median(times)


def generated_project(root: Path, nodes: int, services: int) -> Path:
    from dynia.names import node_ids

    (root / "clusters").mkdir(parents=True)
    (root / "services").mkdir()
    lines = ["version: 1", "name: big", "provider:", "  region: sgp1", "  size: m-4vcpu-32gb",
             f"nodes: [{', '.join(node_ids('big', nodes))}]", "domain: example.com",
             "guard: {memory_threshold: 1.0, on_exceed: warn}", "services:"]
    for i in range(services):
        port = 9000 + i
        (root / "services" / f"s{i}.yml").write_text(
            f'services:\n  app:\n    image: example/app:{i}\n    ports: ["{port}:80"]\n    mem_limit: 64m\n')
        lines += [f"  s{i}:", f"    compose: services/s{i}.yml", f"    domain: s{i}.example.com", f"    port: {port}"]
    (root / "clusters" / "big.yaml").write_text("\n".join(lines) + "\n")
    return root


def inprocess_plan_seconds(nodes: int, services: int, runs: int) -> float:
    """render + offline plan in-process; lifts the spec's 5-node cap by copying the model."""
    from dynia.state import cache
    from dynia.names import node_ids
    from dynia.plan.report import offline_plan
    from dynia.render.rendered import render_cluster
    from dynia.state.store import Project
    from dynia.spec.load import load_cluster

    with tempfile.TemporaryDirectory() as tmp:
        proj = generated_project(Path(tmp), min(nodes, 5), services)
        cluster = load_cluster(Project(proj), "big")
        cluster.spec = cluster.spec.model_copy(update={"nodes": node_ids("big", nodes)})
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            offline_plan(render_cluster(cluster), cache.applied(cluster))  # what `dynia plan --offline` runs
            times.append(time.perf_counter() - t)
        return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    runs = ap.parse_args().runs
    # The console script next to this interpreter (a pyenv shim would add its own start-up).
    script = Path(sys.executable).parent / "dynia"
    dynia = str(script) if script.exists() else (shutil.which("dynia") or sys.exit("pip install -e . first"))
    py = sys.executable

    help_s = median_wall([dynia, "--help"], runs)
    version_s = median_wall([dynia, "--version"], runs)
    base_s = median_wall([py, "-c", "import typer, rich"], runs)
    print(f"dynia --help                 median {help_s * 1000:7.1f} ms")
    print(f"dynia --version              median {version_s * 1000:7.1f} ms")
    print(f"python -c 'import typer, rich' median {base_s * 1000:7.1f} ms")
    print(f"  ratio help / typer+rich     {help_s / base_s:.2f}")

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        small = generated_project(Path(a), 2, 10)
        large = generated_project(Path(b), 5, 100)
        small_s = median_wall([dynia, "plan", "--offline", "--cluster", "big", "--json"], runs, small)
        large_s = median_wall([dynia, "plan", "--offline", "--cluster", "big", "--json"], runs, large)
    print(f"dynia plan --offline 2x10    median {small_s * 1000:7.1f} ms")
    print(f"dynia plan --offline 5x100   median {large_s * 1000:7.1f} ms  (the spec allows at most 5 nodes)")
    print(f"  ratio 5x100 / 2x10          {large_s / small_s:.2f}")

    s10 = inprocess_plan_seconds(2, 10, runs)
    s1000 = inprocess_plan_seconds(10, 100, runs)
    print(f"render+plan in-process 2x10  median {s10 * 1000:7.1f} ms")
    print(f"render+plan in-process 10x100 median {s1000 * 1000:7.1f} ms")
    print(f"  ratio 10x100 / 2x10         {s1000 / s10:.2f}  (work grows 50x)")


if __name__ == "__main__":
    main()
