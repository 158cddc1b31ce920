#!/bin/sh
# Rendered by dynia for node brave-panda of cluster shop.
# keepalived notify: $1=INSTANCE|GROUP $2=name $3=MASTER|BACKUP|FAULT|STOP $4=priority
#        `notify.sh assign`: dynia asks the MASTER to assign the reserved IP again, and waits.
#        keepalived runs this script on a transition only (a reload is none), so a node token
#        fixed by a push would otherwise wait for the next failover.
set -u
dir=/opt/dynia/state
mkdir -p "$dir"
if [ "${1:-}" != assign ]; then
    state="${3:-UNKNOWN}"
    printf '%s %s\n' "$state" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$dir/vrrp.tmp" && mv "$dir/vrrp.tmp" "$dir/vrrp"
fi
# keepalived starts one notify per transition, and two can overlap (BACKUP, then MASTER a few
# seconds later while `compose down` still runs): take turns, and act on the latest recorded
# state, not on this call's, so the last transition always wins.
# (Children must not inherit the lock: a container's conmon would hold it for its lifetime.)
exec 9>"$dir/notify.lock"
flock -w 300 9 || echo "dynia notify: waited 300 s for an earlier transition; going on" >&2
state=$(cut -d' ' -f1 "$dir/vrrp" 2>/dev/null) || state=UNKNOWN

compose() {
    # $1 = service, rest = compose arguments
    svc=$1; shift
    docker compose -f /opt/dynia/compose/"$svc"/docker-compose.yml "$@" 9>&- >/dev/null 2>&1 \
        || echo "dynia notify: compose $* failed for $svc" >&2
}

record_assignment() {
    # $1 = outcome, $2 = the API's HTTP status (000: no answer), $3 = the droplet it asked for.
    # dynia reads this back (status, infra verify, the check before DNS): a refused token must
    # be seen, not only logged where nobody looks.
    printf '{"time":"%s","outcome":"%s","status":"%s","droplet":"%s"}\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "$3" > "$dir/reserved-ip.tmp" \
        && mv "$dir/reserved-ip.tmp" "$dir/reserved-ip.json"
}

assign_reserved_ip() {
    # The token never reaches a command line: curl reads its header from stdin.
    token=$(cat /etc/dynia/provider-token) || {
        echo "dynia notify: no provider token" >&2; record_assignment no-token 000 ""; return 1; }
    delay=1
    for try in 1 2 3 4 5 6 7 8; do
        # A later transition may have made this node BACKUP while we waited: only a node that
        # is still MASTER (the state file, the latest transition's) may take the address.
        now=$(cut -d' ' -f1 "$dir/vrrp" 2>/dev/null)
        if [ "$now" != MASTER ]; then
            echo "dynia notify: no longer MASTER ($now); not assigning the reserved IP" >&2
            return 0
        fi
        # The droplet id is read inside the loop: the metadata service can fail like the API.
        droplet=$(curl -fsS --max-time 5 http://169.254.169.254/metadata/v1/id) || droplet=
        case "$droplet" in *[!0-9]*) droplet= ;; esac   # an id is digits; anything else is no answer
        code=000
        if [ -n "$droplet" ]; then
            code=$(printf 'header = "Authorization: Bearer %s"\n' "$token" | curl -sS -K - \
                --max-time 15 -o /dev/null -w '%{http_code}' -X POST \
                -H 'Content-Type: application/json' \
                -d "{\"type\":\"assign\",\"droplet_id\":$droplet}" \
                "https://api.digitalocean.com/v2/reserved_ips/192.0.2.10/actions")
        fi
        case "$code" in
            2??) record_assignment assigned "$code" "$droplet"; return 0 ;;
            # 000: no answer (DNS, connect, timeout); 422: an earlier action is pending; 429, 5xx.
            000|422|429|5??) sleep "$delay"; delay=$((delay * 2 > 30 ? 30 : delay * 2)) ;;
            *) echo "dynia notify: reserved IP assign answered $code" >&2
               record_assignment refused "$code" "$droplet"; return 1 ;;
        esac
    done
    echo "dynia notify: reserved IP not assigned after $try tries (last answer $code)" >&2
    record_assignment gave-up "$code" "$droplet"
    return 1
}

if [ "${1:-}" = assign ]; then
    [ "$state" = MASTER ] || { echo "dynia notify: not MASTER ($state); not assigning the reserved IP" >&2; exit 3; }
    assign_reserved_ip 9>&-
    exit $?
fi

case "$state" in
    MASTER)
        assign_reserved_ip 9>&- &
        compose admin up -d
        ;;
    BACKUP|FAULT)
        compose admin down
        ;;
    STOP)
        # keepalived is stopping here: this node no longer holds the reserved IP, and a
        # single-writer service must not keep running beside the new MASTER's copy.
        compose admin down
        ;;
esac
wait
exit 0
