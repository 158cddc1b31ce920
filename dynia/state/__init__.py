"""The operator's files: the project layout, capped reads, atomic writes, the cluster lock
(store), .dynia/cache (cache), the stats credentials and secret slots (secrets)."""
