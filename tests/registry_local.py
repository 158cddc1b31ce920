"""A real container registry on 127.0.0.1 for tests that need no lab: Debian's `docker-registry`
(the CNCF distribution registry 2.8), as its own process, with images pushed through its HTTP
API (a config blob, a layer blob, an OCI manifest: what `podman push` uploads). Optionally
behind TLS (an openssl self-signed certificate; SSL_CERT_FILE points a client at it) with
htpasswd Basic authentication (bcrypt by the system's libcrypt, as tests/lab/registry_lab.py).

No root needed: it is a process listening on loopback.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from base64 import b64encode
from pathlib import Path

REGISTRY = "/usr/bin/docker-registry"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def available() -> bool:
    return os.access(REGISTRY, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRegistry:
    def __init__(self, workdir: Path, *, tls: bool = False, login: tuple[str, str] | None = None):
        self.workdir = Path(workdir)
        self.tls, self.login = tls, login
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if tls else 'http'}://{self.host}"
        self.proc: subprocess.Popen | None = None

    @property
    def ca(self) -> Path:
        return self.workdir / "registry.crt"

    def __enter__(self) -> "LocalRegistry":
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = ["version: 0.1", "log: {level: error}",
                 f"storage: {{filesystem: {{rootdirectory: {self.workdir / 'storage'}}}}}"]
        http = f"http: {{addr: '{self.host}'"
        if self.tls:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-days", "2", "-subj", "/CN=dynia test registry",
                            "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", str(self.workdir / "registry.key"), "-out", str(self.ca)],
                           check=True, capture_output=True)
            http += f", tls: {{certificate: {self.ca}, key: {self.workdir / 'registry.key'}}}"
        lines.append(http + "}")
        if self.login:
            from tests.lab.registry_lab import bcrypt

            (self.workdir / "htpasswd").write_text(f"{self.login[0]}:{bcrypt(self.login[1])}\n")
            lines.append(f"auth: {{htpasswd: {{realm: dynia-test, path: {self.workdir / 'htpasswd'}}}}}")
        (self.workdir / "config.yml").write_text("\n".join(lines) + "\n")
        log = open(self.workdir / "registry.log", "ab")
        try:
            self.proc = subprocess.Popen([REGISTRY, "serve", str(self.workdir / "config.yml")],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited: " + (self.workdir / "registry.log").read_text()[-600:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not listen on {self.host}")
                time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    # --- pushing, through the registry's API -----------------------------------------------

    def _request(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None):
        headers = dict(headers or {})
        if self.login:
            headers["Authorization"] = "Basic " + b64encode(f"{self.login[0]}:{self.login[1]}".encode()).decode()
        ctx = ssl.create_default_context(cafile=str(self.ca)) if self.tls else None
        req = urllib.request.Request(url if url.startswith("http") else self.url + url, data=body,
                                     method=method, headers=headers)
        return urllib.request.urlopen(req, timeout=10, context=ctx)

    def _blob(self, repository: str, data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._request("POST", f"/v2/{repository}/blobs/uploads/", b"") as resp:
            location = resp.headers["Location"]
        sep = "&" if "?" in location else "?"
        with self._request("PUT", f"{location}{sep}digest={digest}", data,
                           {"Content-Type": "application/octet-stream"}):
            pass
        return {"digest": digest, "size": len(data)}

    def push(self, repository: str, tag: str, content: str) -> str:
        """An image whose one layer holds `content`, tagged `tag`; its manifest digest."""
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "config": {"Labels": {"content": content}},
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **self._blob(repository, config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        **self._blob(repository, content.encode())}],
        }).encode()
        with self._request("PUT", f"/v2/{repository}/manifests/{tag}", manifest,
                           {"Content-Type": OCI_MANIFEST}) as resp:
            assert resp.headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(manifest).hexdigest()
        return "sha256:" + hashlib.sha256(manifest).hexdigest()
