#!/bin/sh
# Rendered by dynia. keepalived track script: does this node's HAProxy answer requests?
# A live master pid is not enough: a master whose workers died, never started or hang keeps
# its pid while serving nothing, and the node would keep the VIP. So the listener is asked too:
# HAProxy answers a plain-HTTP request itself (a redirect to HTTPS, no backend involved).
pid=$(cat /run/haproxy.pid 2>/dev/null) || exit 1
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || exit 1
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:80/) || exit 1
[ "$code" = 301 ]
