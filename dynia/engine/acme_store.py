"""Where tls.mode letsencrypt's ACME state is kept, and which copy is in force: the provision
stack's secret `acme` output (read back and passed in on every run, so the account and the
certificate are never lost), or — between an order and the provision that stores it — the
stack's secret config dynia:acme. The engine asks here (Engine.acme_state, keep_acme)."""
from __future__ import annotations

from ..errors import DyniaError
from .failures import NO_CONFIG_KEY, backend_error

ACME_CONFIG = "dynia:acme"  # the provision stack's config: an order not yet stored (Engine.keep_acme)


def origin_to_letsencrypt(cluster: str) -> DyniaError:
    """A cluster provisioned in origin mode (its provision stack holds an Origin CA certificate
    and no ACME state) whose spec now says letsencrypt. Refused before anything runs: provision
    would delete (revoke) the Origin CA certificate and infra push the self-signed placeholder
    while the records are still proxied — Cloudflare answers 526 to every visitor until the
    first order, which itself needs the DNS-only records that only the apps phase makes."""
    return DyniaError("config", f"{cluster} was provisioned with tls.mode origin and its spec now says letsencrypt: "
                      "switching in place would revoke the Origin CA certificate and serve a self-signed "
                      "placeholder behind Cloudflare's proxy (HTTP 526 for every visitor) until the first order",
                      f"set tls.mode back to origin for {cluster}; to move to Let's Encrypt, create a new cluster "
                      "with tls.mode letsencrypt, move the services to it, then destroy this one")


class AcmeStore:
    """One engine's ACME state: read once from its provision stack (current), or set after an
    order (keep)."""

    def __init__(self, engine):
        self.engine = engine
        self.state = None          # dynia.acme.state.AcmeState: read once (current), or set after an order
        self.read = False
        # the provision stack's config dynia:acme is set (an order not yet stored, or a by-hand
        # copy): removed once a provision run has exported the state (Engine.up)
        self.config = False
        self.pending = False  # the state in force is an order the acme output does not hold yet

    def current(self):
        """tls.mode letsencrypt's state (dynia.acme.state.AcmeState), kept with the cluster's state: the
        provision stack's secret `acme` output, read back here and passed in on every run so the
        account and the certificate are never lost — or, when newer (a later `issued_at`), the
        stack's secret config dynia:acme: an order kept there (keep) by a run whose
        provision then failed, reused rather than ordered again. A stale config (older than the
        output, e.g. a by-hand copy that outlived a renewal) never wins. None in origin mode
        when none was kept. In letsencrypt mode before the first order: a self-signed
        placeholder, made once (provision then keeps it) — HAProxy cannot bind 443 without a
        certificate, and the first HTTP-01 validation needs HAProxy up on port 80."""
        from ..acme.state import AcmeState, newer, placeholder_state
        from ..tls import uses_acme

        if not self.read:
            stack = self.engine.stack("provision")
            stored = self.engine._output(stack, "acme")
            output = AcmeState.from_dict(stored) if stored is not None else None
            # origin mode orders nothing, so keeps no order there (and skips a Pulumi CLI call)
            kept = self.configured(stack) if uses_acme(self.engine.cluster.spec.tls.mode) else None
            self.config = kept is not None
            self.pending = kept is not None and newer(kept, output)
            self.state = kept if self.pending else output
            if self.state is None and uses_acme(self.engine.cluster.spec.tls.mode):
                if self.engine._output(stack, "originPem") is not None:
                    raise origin_to_letsencrypt(self.engine.cluster.name)
                self.state = placeholder_state(self.engine.cluster.spec)
            self.read = True
        return self.state

    def keep(self, state) -> None:
        """A freshly ordered certificate, made durable before anything else runs: written to the
        provision stack's secret config dynia:acme (a failed or interrupted provision must not
        lose it — Let's Encrypt allows 5 duplicate certificates a week), then stored as the
        `acme` output by the next provision and pushed by the next infra run."""
        import json

        from pulumi.automation import ConfigValue

        self.state, self.read, self.pending = state, True, True
        try:
            self.engine.stack("provision").set_config(ACME_CONFIG,
                                                      ConfigValue(json.dumps(state.to_dict()), secret=True))
        except DyniaError:
            raise
        except Exception as exc:
            raise DyniaError("state", f"the certificate just ordered for {', '.join(state.domains)} could not be "
                             f"kept in the provision stack's config ({exc.__class__.__name__})",
                             "check the Pulumi backend and the passphrase; the next `dynia cert renew` orders "
                             "again (the account key is lost with it on a first order)") from None
        self.config = True

    @staticmethod
    def configured(stack):
        """The provision stack's config dynia:acme (checked; a damaged one is a `state` error),
        None when unset."""
        import json

        from ..acme.state import AcmeState

        try:
            value = stack.get_config(ACME_CONFIG)
        except Exception as exc:
            # Unset is the one answer that means "no order kept"; anything else (a wrong
            # passphrase, an unreachable backend) read as unset would order a second certificate.
            if NO_CONFIG_KEY.search(getattr(exc, "stderr", "") or str(exc)):
                return None
            raise backend_error(stack, exc) from None
        text = getattr(value, "value", None)
        shown = "the provision stack's config dynia:acme"
        try:
            data = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            data = None
        return AcmeState.from_dict(data, shown)

    def forget_config(self, stack) -> None:
        """After a provision run exported the state in force: the config copy is either that
        same state or older, and an older one must never come back (current() would ignore it,
        a by-hand `pulumi up` would not)."""
        if not self.config:
            return
        try:
            stack.remove_config(ACME_CONFIG)
        except Exception as exc:
            self.engine.on_progress(f"provision: could not remove the stack config {ACME_CONFIG} "
                                    f"({exc.__class__.__name__}); remove it: pulumi config rm --stack "
                                    f"{self.engine.cluster.name}-provision {ACME_CONFIG}")
            return
        self.config = self.pending = False
