"""A service's containers on a node: which there are, and a command run in one (`dynia exec`).

Commands as data per node profile (docker on droplets, podman in the lab), pinned as strings by
tests/unit/test_container_commands.py. The containers are found by their compose project's
label (dynia-<service>, dynia.paths.compose_project), as compose_running finds them: no compose
file is needed on the node, and a container someone else runs is never touched.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from ..paths import compose_project
from ..providers.base import NodeProfile
from .facts import PROJECT_LABELS

# The compose service a container belongs to (both engines' compose set it).
SERVICE_LABEL = "com.docker.compose.service"
# An engine's container id: 64 hex digits (both engines); anything else in a listing is not read.
CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
MAX_CONTAINERS = 64


@dataclass(frozen=True)
class Container:
    id: str
    state: str       # the engine's word: running, exited, created, …
    name: str        # the engine's name (docker: dynia-api-api-1, podman-compose: dynia-api_api_1)
    part: str        # the compose service inside the operator's file (api, cache, …); "" unknown

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ContainerCommands:
    profile: NodeProfile

    @property
    def engine(self) -> str:
        return "podman" if self.profile.container_engine == "podman" else "docker"

    def _label(self) -> str:
        return PROJECT_LABELS[1] if self.engine == "podman" else PROJECT_LABELS[0]

    def listing(self, service: str) -> str:
        """One line per container of the service, running or not: `id state name part`
        (parse_list). Nothing when there is none; a failing engine fails the command."""
        fmt = f'{{{{.Id}}}} {{{{.State.Status}}}} {{{{.Name}}}} {{{{index .Config.Labels "{SERVICE_LABEL}"}}}}'
        return (f"ids=$({self.engine} ps -aq --no-trunc --filter label={self._label()}={compose_project(service)}) && "
                f"{{ [ -z \"$ids\" ] || {self.engine} inspect --format {shlex.quote(fmt)} $ids; }}")

    def exec(self, container_id: str, argv: list[str], *, interactive: bool, tty: bool, token: str) -> str:
        """The operator's command in the container, as one shell line: every word quoted, so the
        node's shell runs exactly these words in the container and nothing on the node. `token`
        marks the command's processes (EXEC_TOKEN in their environment) for signal()."""
        if not CONTAINER_ID.fullmatch(container_id):
            raise ValueError("a container id is 64 hex digits")
        flags = "".join(f for f, on in ((" -i", interactive), (" -t", tty)) if on)
        return f"{self.engine} exec{flags} --env {_token(token)} {container_id} {shlex.join(argv)}"

    @staticmethod
    def signal(token: str, name: str = "INT") -> str:
        """Sends the signal to every process of one exec (found by its token, as the node's PID
        namespace sees it). Neither engine's `exec` passes a signal on to what it runs, and
        without a terminal no keystroke can: this is how Ctrl-C reaches the command."""
        if name not in ("INT", "TERM", "KILL"):
            raise ValueError("INT, TERM or KILL")
        return (f"for d in /proc/[0-9]*; do grep -qzxF {_token(token)} $d/environ 2>/dev/null && "
                f"kill -{name} ${{d#/proc/}} 2>/dev/null; done; true")


# The environment variable that marks one `dynia exec`'s processes: a random token, not a secret.
EXEC_TOKEN = "DYNIA_EXEC"


def _token(token: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{16,64}", token):
        raise ValueError("an exec token is hex digits")
    return f"{EXEC_TOKEN}={token}"


def parse_list(output: str) -> list[Container]:
    """ContainerCommands.listing's output → containers, by name. A line that does not fit (not an
    engine's id, too few words) is not read: the node's answer is never trusted."""
    found = []
    for line in output.splitlines()[:MAX_CONTAINERS]:
        words = line.split(" ", 3)
        if len(words) < 3 or not CONTAINER_ID.fullmatch(words[0]):
            continue
        part = words[3].strip() if len(words) > 3 else ""
        found.append(Container(words[0], words[1], words[2].lstrip("/"), "" if part == "<no value>" else part))
    return sorted(found, key=lambda c: c.name)
