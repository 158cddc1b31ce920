"""One room per thing done to a live cluster: up, status, drift, repair, verify, certificates
(and the certificate slot's roll), doctor, snapshots, Cloudflare's edge ranges."""
