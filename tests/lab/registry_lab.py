"""A private container registry on the lab bridge: Debian's `docker-registry` (the CNCF
distribution registry, 2.8) with htpasswd authentication, behind TLS.

It runs in a lab client namespace (dynia.nodes.lab.Lab.add_client; lab.down() removes it
too, should this harness be killed). Its listener certificate is made here (openssl, the
registry's address as subjectAltName); the lab nodes trust it through
/etc/containers/certs.d/<host:port>/ca.crt, podman's per-registry trust directory, so every
pull verifies the registry's certificate — no insecure-registry setting anywhere.

The htpasswd entry is bcrypt (the only hash the registry accepts), made by the system's
libcrypt (libxcrypt: `$2b$`), so no Python dependency and no apache2-utils are needed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .lab_helpers import client_argv

REGISTRY = "/usr/bin/docker-registry"
PORT = 5000
HOST_INDEX = 179  # the registry's host on the lab subnet: no node (.11+), VIP (.100), pebble (.200) or edge (last /28)
CLIENT = "registry"
USER = "lab-puller"


class RegistryLabError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    missing = [p for p in (REGISTRY, "/usr/bin/openssl") if not os.access(p, os.X_OK)]
    return missing + ([] if ctypes.util.find_library("crypt") else ["libcrypt"])


def bcrypt(password: str) -> str:
    """A bcrypt hash by the system's libcrypt (crypt_gensalt with the OS's randomness)."""
    lib = ctypes.CDLL(ctypes.util.find_library("crypt"))
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$2b$", 10, None, 0)
    hashed = lib.crypt(password.encode(), salt) if salt else None
    if not hashed or not hashed.startswith(b"$2b$"):
        raise RegistryLabError("libcrypt made no bcrypt hash")
    return hashed.decode()


class RegistryLab:
    """Use as a context manager: the registry answers at `server` once entered."""

    def __init__(self, lab, workdir: Path, password: str):
        self.lab = lab
        self.workdir = Path(workdir)
        self.ip = str(list(ipaddress.ip_network(lab.subnet).hosts())[HOST_INDEX])
        self.server = f"{self.ip}:{PORT}"
        self.password = password
        self.proc: subprocess.Popen | None = None

    @property
    def ca(self) -> Path:
        return self.workdir / "registry.crt"

    def __enter__(self) -> "RegistryLab":
        missing = missing_tools()
        if missing:
            raise RegistryLabError(f"missing: {', '.join(missing)} (bash .ci/lab-install installs them)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._files()
            self.lab.remove_client(CLIENT)  # left by a killed run of this lab (the lab lock rules out a live one)
            self.lab.add_client(CLIENT, self.ip)
            log = open(self.workdir / "registry.log", "ab")
            try:
                self.proc = subprocess.Popen([*client_argv(self.lab, CLIENT), REGISTRY, "serve",
                                              str(self.workdir / "config.yml")],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            finally:
                log.close()
            self._wait()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.lab.remove_client(CLIENT)

    def _files(self) -> None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=dynia lab registry",
                        "-addext", f"subjectAltName=IP:{self.ip}",
                        "-keyout", str(self.workdir / "registry.key"), "-out", str(self.ca)],
                       check=True, capture_output=True)
        (self.workdir / "htpasswd").write_text(f"{USER}:{bcrypt(self.password)}\n")
        storage = self.workdir / "storage"
        shutil.rmtree(storage, ignore_errors=True)
        (self.workdir / "config.yml").write_text(
            "version: 0.1\n"
            "log: {level: info}\n"
            f"storage: {{filesystem: {{rootdirectory: {storage}}}}}\n"
            f"http: {{addr: '{self.server}', tls: {{certificate: {self.ca}, key: {self.workdir / 'registry.key'}}}}}\n"
            f"auth: {{htpasswd: {{realm: dynia-lab, path: {self.workdir / 'htpasswd'}}}}}\n")

    def _wait(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RegistryLabError("docker-registry exited: "
                                       + (self.workdir / "registry.log").read_text()[-600:])
            try:
                socket.create_connection((self.ip, PORT), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RegistryLabError(f"docker-registry did not listen on {self.server}")
                time.sleep(0.1)

    def trust_on(self, node: str) -> None:
        """The node's podman verifies the registry's certificate against this one (no insecure flag)."""
        self.lab.run(node, f"mkdir -p /etc/containers/certs.d/{self.server} && "
                           f"cat > /etc/containers/certs.d/{self.server}/ca.crt", input=self.ca.read_bytes())

    def push(self, node: str, source: str, reference: str) -> None:
        """Put `source` (an image on the node) into the registry as `reference`, then drop the
        node's copy of the reference: every node has to pull it."""
        self.lab.run(node, f"podman tag {source} {reference} && "
                           f"podman push -q --creds {USER}:\"$(cat)\" {reference} && podman rmi {reference} >/dev/null",
                     input=self.password.encode())
