"""A `pulumi` CLI call that failed, as a typed error: the CLI's last word (pulumi_failed), a
stack's state that could not be read (backend_error), and the one answer that means a config
key is unset (NO_CONFIG_KEY)."""
from __future__ import annotations

import re

from ..errors import DyniaError


def pulumi_failed(what: str, exc: Exception, resume: str | None = None) -> DyniaError:
    """A `pulumi` subprocess that failed (the SDK's CommandError): an engine error with the
    CLI's last word, never an internal error."""
    text = getattr(exc, "stderr", "") or str(exc)
    # The SDK's CommandError reads "code: N / stdout: … / stderr: …": the CLI's words are the last.
    text = text.rsplit("\n stderr: ", 1)[-1]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return DyniaError("engine", f"{what} failed: {lines[-1] if lines else exc.__class__.__name__}",
                      "--debug prints the engine's full output and logs it", resume)


NO_CONFIG_KEY = re.compile(r"configuration key '[^']*' not found")


def backend_error(stack, exc: Exception) -> DyniaError:
    """A stack's state that could not be read (a wrong passphrase, a backend out of reach)."""
    err = pulumi_failed(f"reading the state of stack {getattr(stack, 'name', '?')}", exc)
    err.hint = ("PULUMI_CONFIG_PASSPHRASE must be the passphrase the state was made with, and the backend "
                f"(spec backend / PULUMI_BACKEND_URL) reachable; {err.hint}")
    return err
