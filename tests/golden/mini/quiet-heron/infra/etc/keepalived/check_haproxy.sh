#!/bin/sh
# Rendered by dynia. keepalived track script: is this node's HAProxy master alive?
pid=$(cat /run/haproxy.pid 2>/dev/null) || exit 1
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
