"""The Pulumi Automation API (automation) and the session every operating command starts from
(session: lock, load, preflight, SSH targets, the live holder), with what runs inside an
`up`: host keys pinned on first use, the reserved-IP holder gate, the resize roll's node steps."""
