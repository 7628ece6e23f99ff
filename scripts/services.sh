#!/usr/bin/env bash
# services.sh: a private RabbitMQ and PostgreSQL for jsm-migrate's demo, tests and benchmarks.
#
# Usage: scripts/services.sh start|stop|status [rabbitmq|postgres]
#        scripts/services.sh env                 # shell exports to source (contains the passwords)
#        scripts/services.sh rabbitmqctl ARGS... # rabbitmqctl against the private node
#        scripts/services.sh psql ARGS...        # psql as role jsm on database jsm
#        scripts/services.sh restart-postgres    # fast stop then start (fault-injection drills)
#
# Both servers come from Debian's packages (scripts/setup.sh installs them) but run from a data
# folder of the project's own, ${JSM_DATA_DIR:-<repo>/.data}, on their own ports and on 127.0.0.1
# only, so they never clash with a system instance (which this script never starts or touches).
#
#   <data>/rabbitmq/   RabbitMQ config, plugins file, pid file, mnesia (owned by the rabbitmq user)
#   <data>/postgres/   PostgreSQL cluster (data/) and its unix socket (run/) (owned by postgres)
#   <data>/tls/        local test CA (ca.pem), server certificate for localhost/127.0.0.1, and an
#                      unrelated CA (other-ca.pem) that tests use to prove a wrong CA is refused
#   <data>/secrets/    amqp-password, postgres-password: generated once, mode 600
#   <data>/logs/       rabbitmq/ (node log), rabbitmq-startup.log, postgres.log
#   <data>/env.sh      what `env` prints, written by `start` (mode 600)
#
# Ports (all on 127.0.0.1; override with the variables):
#   JSM_AMQP_PORT 5673, JSM_AMQPS_PORT 5674, JSM_RABBITMQ_MGMT_PORT 15673,
#   JSM_RABBITMQ_DIST_PORT 25673, JSM_POSTGRES_PORT 55432; node JSM_RABBITMQ_NODENAME jsm-rabbit@localhost.
#   Erlang's port mapper (epmd, 4369) is shared by every Erlang node on the machine; when this script
#   is the first to need it, it starts bound to the loopback addresses only.
#
# Every step is idempotent: `start` on running services says so and succeeds, a stale pid file
# (e.g. after a container restart) is cleaned up, and every wait is bounded and, on timeout, fails
# with the tail of the service's log.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
# The servers run as the rabbitmq and postgres users, who cannot enter a clone under /root (mode
# 700): the default then moves to a folder named after the clone under /var/tmp.
others_can_traverse() {
    local dir=$1
    while [[ $dir != / ]]; do
        [[ $(stat -c %A -- "$dir") == ?????????[xt] ]] || return 1
        dir=$(dirname -- "$dir")
    done
}
if [[ -n ${JSM_DATA_DIR:-} ]]; then
    DATA_DIR=$JSM_DATA_DIR
elif others_can_traverse "$REPO_ROOT"; then
    DATA_DIR=$REPO_ROOT/.data
else
    DATA_DIR=/var/tmp/jsm-migrate-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12)
fi
DATA_DIR=$(realpath -m -- "$DATA_DIR")   # absolute: the servers run with another working directory

RABBIT_NODE=${JSM_RABBITMQ_NODENAME:-jsm-rabbit@localhost}
AMQP_PORT=${JSM_AMQP_PORT:-5673}
AMQPS_PORT=${JSM_AMQPS_PORT:-5674}
MGMT_PORT=${JSM_RABBITMQ_MGMT_PORT:-15673}
DIST_PORT=${JSM_RABBITMQ_DIST_PORT:-25673}
PG_PORT=${JSM_POSTGRES_PORT:-55432}
# Bound on each service's start (seconds). RabbitMQ needs about 10 s on an idle 2-core box.
START_TIMEOUT=${JSM_SERVICE_START_TIMEOUT:-60}
BIND_ADDRESS=127.0.0.1

RABBIT_BIN=/usr/lib/rabbitmq/bin
RABBIT_DIR=$DATA_DIR/rabbitmq
RABBIT_PID_FILE=$RABBIT_DIR/rabbit.pid
RABBIT_STARTUP_LOG=$DATA_DIR/logs/rabbitmq-startup.log
PG_ROOT=$DATA_DIR/postgres
PGDATA_DIR=$PG_ROOT/data
PG_SOCKET_DIR=$PG_ROOT/run
PG_LOG=$DATA_DIR/logs/postgres.log
TLS_DIR=$DATA_DIR/tls
SECRETS_DIR=$DATA_DIR/secrets
ENV_FILE=$DATA_DIR/env.sh

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
log() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

# Print the last lines of a log file (used whenever a wait times out or a step fails).
show_tail() {
    local file=$1 lines=${2:-40}
    if [[ -s $file ]]; then
        printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
        tail -n "$lines" -- "$file" >&2 || true
        printf -- '----- end of %s -----\n' "$file" >&2
    else
        printf 'services: (no log at %s)\n' "$file" >&2
    fi
}

# True when something accepts TCP connections on 127.0.0.1:PORT (no extra tools needed).
port_open() {
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# True when /proc/PID belongs to a live process whose command line contains NEEDLE.
pid_runs() {
    local pid=$1 needle=$2 cmdline
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$needle"* ]]
}

# True when PID is a RabbitMQ node started from this data folder (its environment names our pid
# file; the node name is not on its command line).
rabbit_pid_ours() {
    local pid=$1
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/environ ]] || return 1
    local environ
    environ=$'\n'$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null)$'\n'
    [[ $environ == *$'\n'"RABBITMQ_PID_FILE=$RABBIT_PID_FILE"$'\n'* ]]
}

# Both servers refuse to run as root. As root they run as Debian's service users; as an ordinary
# user they run as that user (no user switch needed).
if [[ $(id -u) -eq 0 ]]; then
    RABBIT_USER=rabbitmq
    PG_USER=postgres
else
    RABBIT_USER=$(id -un)
    PG_USER=$(id -un)
fi

# Run a command as USER: through runuser when we are root, directly otherwise. runuser keeps the
# environment (the RABBITMQ_* variables below) and sets HOME, so RabbitMQ finds its Erlang cookie.
as_user() {
    local user=$1
    shift
    if [[ $user == "$(id -un)" ]]; then
        "$@"
    else
        runuser -u "$user" -- "$@"
    fi
}

# The whole private-node environment, exported once so that the server and every rabbitmqctl
# call agree. RABBITMQ_CONF_ENV_FILE and RABBITMQ_ADVANCED_CONFIG_FILE point at our own (empty)
# files so that a system-wide /etc/rabbitmq configuration cannot leak into the private node.
export RABBITMQ_NODENAME=$RABBIT_NODE
export RABBITMQ_NODE_IP_ADDRESS=$BIND_ADDRESS
export RABBITMQ_NODE_PORT=$AMQP_PORT
export RABBITMQ_DIST_PORT=$DIST_PORT
export RABBITMQ_MNESIA_BASE=$RABBIT_DIR/mnesia
export RABBITMQ_LOG_BASE=$DATA_DIR/logs/rabbitmq
export RABBITMQ_PID_FILE=$RABBIT_PID_FILE
export RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_DIR/enabled_plugins
export RABBITMQ_CONFIG_FILE=$RABBIT_DIR/rabbitmq      # RabbitMQ appends .conf
export RABBITMQ_ADVANCED_CONFIG_FILE=$RABBIT_DIR/advanced.config
export RABBITMQ_CONF_ENV_FILE=$RABBIT_DIR/rabbitmq-env.conf
export ERL_CRASH_DUMP=$DATA_DIR/logs/rabbitmq/erl_crash.dump
# Loopback only: the port mapper (if we are the first to start it), the node's distribution
# listener and the CLI tools' own short-lived distribution listeners.
export ERL_EPMD_ADDRESS=$BIND_ADDRESS
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

# rabbitmqctl against the private node, as the user whose Erlang cookie the node uses. (An array,
# so that `timeout` can run it too.)
if [[ $RABBIT_USER == "$(id -un)" ]]; then
    RABBIT_CTL=("$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE")
else
    RABBIT_CTL=(runuser -u "$RABBIT_USER" -- "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE")
fi
# 9>&-: no child may inherit the lock of take_lock (the CLI may start epmd, which stays).
rabbit_ctl() { "${RABBIT_CTL[@]}" "$@" 9>&-; }

# The highest installed PostgreSQL, unless the cluster already exists: then the version that
# created it (a cluster cannot be opened by another major version).
pg_bin_dir() {
    local version dir
    if [[ -s $PGDATA_DIR/PG_VERSION ]]; then
        version=$(<"$PGDATA_DIR/PG_VERSION")
        dir=/usr/lib/postgresql/$version/bin
        [[ -x $dir/pg_ctl ]] || die "the cluster in $PGDATA_DIR was made by PostgreSQL $version, which is not installed (remove $PG_ROOT to start afresh)"
        printf '%s\n' "$dir"
        return
    fi
    dir=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
        sort -V | tail -n 1)
    [[ -n $dir ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql: run scripts/setup.sh"
    dirname -- "$dir"
}

# ---------------------------------------------------------------------------------------------
# Pre-flight checks
# ---------------------------------------------------------------------------------------------
check_settings() {
    local pair variable value
    for pair in JSM_AMQP_PORT:AMQP_PORT JSM_AMQPS_PORT:AMQPS_PORT JSM_RABBITMQ_MGMT_PORT:MGMT_PORT \
        JSM_RABBITMQ_DIST_PORT:DIST_PORT JSM_POSTGRES_PORT:PG_PORT JSM_SERVICE_START_TIMEOUT:START_TIMEOUT; do
        variable=${pair#*:}
        value=${!variable}
        if ! [[ $value =~ ^[0-9]{1,5}$ ]] || ((10#$value < 1 || 10#$value > 65535)); then
            die "${pair%%:*} must be a number between 1 and 65535 (got '$value')"
        fi
    done
    [[ $RABBIT_NODE =~ ^[A-Za-z0-9_-]+@[A-Za-z0-9.-]+$ ]] ||
        die "JSM_RABBITMQ_NODENAME must look like name@host (got '$RABBIT_NODE')"
    # RabbitMQ's configuration format and pg_ctl's option parsing do not take whitespace in paths.
    [[ $DATA_DIR != *[[:space:]]* ]] || die "the data folder path '$DATA_DIR' contains whitespace: set JSM_DATA_DIR to another folder"
}

check_tools() {
    local missing=() tool
    for tool in "$RABBIT_BIN/rabbitmq-server" "$RABBIT_BIN/rabbitmqctl" /usr/bin/openssl /usr/bin/python3 /usr/bin/psql /usr/bin/pg_isready; do
        [[ -x $tool ]] || missing+=("$tool")
    done
    if [[ $(id -u) -eq 0 ]]; then
        id -u rabbitmq >/dev/null 2>&1 || missing+=("user rabbitmq")
        id -u postgres >/dev/null 2>&1 || missing+=("user postgres")
    fi
    ((${#missing[@]} == 0)) || die "missing: ${missing[*]}. Run scripts/setup.sh first."
}

# The servers run as other users: each must be able to reach the data folder. Under /root (mode
# 700) they cannot, and would die later with obscure errors, so say it now.
check_data_dir_reachable() {
    local probe=$DATA_DIR user
    while [[ ! -e $probe ]]; do probe=$(dirname -- "$probe"); done
    [[ -d $probe ]] || die "$probe is not a folder: set JSM_DATA_DIR to a folder path"
    for user in "$RABBIT_USER" "$PG_USER"; do
        if ! as_user "$user" test -x "$probe"; then
            die "the data folder $DATA_DIR is not reachable by the '$user' user (a parent folder is not traversable, e.g. /root is mode 700). Set JSM_DATA_DIR to a folder outside it, e.g. JSM_DATA_DIR=/var/tmp/jsm-data $0 ${COMMAND:-start}"
        fi
    done
}

# Create the folder layout with the owners each server needs. Safe to repeat.
prepare_layout() {
    install -d -m 755 "$DATA_DIR" "$DATA_DIR/logs" "$TLS_DIR" "$DATA_DIR/bench"
    install -d -m 700 "$SECRETS_DIR"
    if [[ $(id -u) -eq 0 ]]; then
        install -d -m 750 -o rabbitmq -g rabbitmq "$RABBIT_DIR" "$DATA_DIR/logs/rabbitmq"
        install -d -m 700 -o postgres -g postgres "$PG_ROOT" "$PG_SOCKET_DIR"
        # A previous run may have left these owned by someone else: fix without touching contents.
        chown rabbitmq:rabbitmq "$RABBIT_DIR" "$DATA_DIR/logs/rabbitmq"
        [[ ! -d $RABBIT_DIR/mnesia ]] || chown -R rabbitmq:rabbitmq "$RABBIT_DIR/mnesia"
        chown postgres:postgres "$PG_ROOT" "$PG_SOCKET_DIR"
    else
        install -d -m 750 "$RABBIT_DIR" "$DATA_DIR/logs/rabbitmq"
        install -d -m 700 "$PG_ROOT" "$PG_SOCKET_DIR"
    fi
}

# Only one start/stop at a time per data folder (e.g. demo.sh and test.sh run side by side).
# Every long-lived child (servers, epmd) is started with `9>&-` so it does not inherit the lock.
# The servers this script starts are daemons: they must not inherit the caller's descriptors, or a
# caller that learns of this script's end by end-of-file (Foundation's Process does) waits for the
# daemons. Called before take_lock opens descriptor 9; 0-2 stay (the daemons' output is redirected).
close_inherited_descriptors() {
    local descriptor number
    for descriptor in "/proc/$$/fd"/*; do
        number=${descriptor##*/}
        if ((number > 2)); then eval "exec ${number}>&-" 2>/dev/null || true; fi
    done
}

take_lock() {
    exec 9>"$DATA_DIR/.services.lock"
    if ! flock -n 9; then
        log "waiting for another services.sh to finish with $DATA_DIR (at most 300 s)"
        flock -w 300 9 || die "another services.sh has held $DATA_DIR/.services.lock for 300 s; giving up"
    fi
}

# ---------------------------------------------------------------------------------------------
# Secrets and TLS material (generated once, kept across restarts)
# ---------------------------------------------------------------------------------------------
ensure_secret() {
    local file=$SECRETS_DIR/$1
    if [[ ! -s $file ]]; then
        # Hex: safe in URLs, SQL literals and shell quotes without escaping.
        (umask 077 && openssl rand -hex 24 >"$file")
        log "generated a new password in $file"
    fi
    chmod 600 "$file"
}

read_secret() {
    local file=$SECRETS_DIR/$1
    [[ -s $file ]] || die "$file is missing: run scripts/services.sh start first"
    tr -d '\n' <"$file"
}

# A CA, a server certificate for localhost and 127.0.0.1 signed by it, and an unrelated CA.
# Regenerated only when missing, inconsistent or about to expire.
ensure_tls() {
    local ok=1
    for f in ca.pem ca-key.pem server.pem server-key.pem other-ca.pem; do
        [[ -s $TLS_DIR/$f ]] || ok=0
    done
    if ((ok)); then
        openssl x509 -checkend 86400 -noout -in "$TLS_DIR/server.pem" >/dev/null 2>&1 || ok=0
        openssl verify -CAfile "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" >/dev/null 2>&1 || ok=0
    fi
    if ((ok == 0)); then
        log "generating the local test CA and server certificate in $TLS_DIR"
        local work
        work=$(mktemp -d)
        # shellcheck disable=SC2064  # expand now: the folder name is known now
        trap "rm -rf -- '$work'" RETURN
        cat >"$work/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
        (
            umask 077
            cd "$work"
            openssl req -x509 -config openssl.cnf -extensions ca -newkey rsa:2048 -nodes \
                -keyout ca-key.pem -out ca.pem -days 3650 -subj '/O=jsm-migrate/CN=jsm-migrate local test CA'
            openssl req -x509 -config openssl.cnf -extensions ca -newkey rsa:2048 -nodes \
                -keyout other-ca-key.pem -out other-ca.pem -days 3650 \
                -subj '/O=jsm-migrate/CN=jsm-migrate unrelated CA (must be refused)'
            openssl req -new -config openssl.cnf -newkey rsa:2048 -nodes \
                -keyout server-key.pem -out server.csr -subj '/O=jsm-migrate/CN=localhost'
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem \
                -set_serial "0x$(openssl rand -hex 16)" -days 825 \
                -extfile openssl.cnf -extensions server -out server.pem
        ) >"$work/openssl.log" 2>&1 || { show_tail "$work/openssl.log"; die "openssl failed to make the test certificates"; }
        install -m 644 "$work/ca.pem" "$work/other-ca.pem" "$work/server.pem" "$TLS_DIR/"
        install -m 600 "$work/ca-key.pem" "$work/other-ca-key.pem" "$TLS_DIR/"
        install -m 640 "$work/server-key.pem" "$TLS_DIR/"
    fi
    # The broker (running as rabbitmq) must read its key; nobody else needs to.
    if [[ $(id -u) -eq 0 ]]; then
        chown root:rabbitmq "$TLS_DIR/server-key.pem"
    fi
    chmod 640 "$TLS_DIR/server-key.pem"
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ
# ---------------------------------------------------------------------------------------------

# Prints the OS pid of the node that answers to our node name, or fails if none answers.
rabbit_node_pid() {
    local out
    out=$(rabbit_ctl -q eval 'os:getpid().' 2>/dev/null) || return 1
    out=${out//\"/}
    [[ $out =~ ^[0-9]+$ ]] || return 1
    printf '%s\n' "$out"
}

# 0: our node runs and answers; 1: not running; 2: a node with our name answers but is not ours.
rabbit_state() {
    local file_pid="" node_pid
    [[ -s $RABBIT_PID_FILE ]] && file_pid=$(tr -dc '0-9' <"$RABBIT_PID_FILE")
    if node_pid=$(rabbit_node_pid); then
        [[ $node_pid == "$file_pid" ]] && return 0
        return 2
    fi
    return 1
}

write_rabbit_config() {
    local tmp
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Generated by scripts/services.sh on every start: edit the script, not this file.
listeners.tcp.default = $BIND_ADDRESS:$AMQP_PORT
listeners.ssl.default = $BIND_ADDRESS:$AMQPS_PORT
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server-key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
management.tcp.ip = $BIND_ADDRESS
management.tcp.port = $MGMT_PORT
# Headroom for a small test box: do not block publishers on a nearly full disk or on memory.
disk_free_limit.absolute = 50MB
vm_memory_high_watermark.relative = 0.4
# The default guest user keeps its loopback-only restriction (it works on 127.0.0.1).
log.console = false
log.file.level = info
EOF
    install -m 644 "$tmp" "$RABBIT_DIR/rabbitmq.conf"
    rm -f -- "$tmp"
    printf '[rabbitmq_management].\n' >"$RABBIT_DIR/enabled_plugins"
    printf '[].\n' >"$RABBIT_DIR/advanced.config"
    printf '# Intentionally empty: keeps /etc/rabbitmq/rabbitmq-env.conf out of the private node.\n' \
        >"$RABBIT_DIR/rabbitmq-env.conf"
    if [[ $(id -u) -eq 0 ]]; then
        chown rabbitmq:rabbitmq "$RABBIT_DIR/rabbitmq.conf" "$RABBIT_DIR/enabled_plugins" \
            "$RABBIT_DIR/advanced.config" "$RABBIT_DIR/rabbitmq-env.conf"
    fi
}

# Creates or updates user jsm with the stored password and full rights on vhost /. The password
# never appears on a command line: a salted SHA-256 hash (RabbitMQ's default scheme) is imported
# as definitions through standard input.
ensure_rabbit_user() {
    local definitions
    definitions=$(read_secret amqp-password | python3 -c '
import base64, hashlib, json, os, sys
password = sys.stdin.read().strip().encode()
salt = os.urandom(4)
digest = base64.b64encode(salt + hashlib.sha256(salt + password).digest()).decode()
print(json.dumps({
    "users": [{"name": "jsm", "password_hash": digest,
               "hashing_algorithm": "rabbit_password_hashing_sha256",
               "tags": ["administrator"]}],
    "permissions": [{"user": "jsm", "vhost": "/",
                     "configure": ".*", "write": ".*", "read": ".*"}],
}))')
    printf '%s\n' "$definitions" | rabbit_ctl -q import_definitions --format json >/dev/null ||
        die "could not create the RabbitMQ user jsm"
}

# Bounded wait until every TCP listener of the node accepts connections.
wait_rabbit_listeners() {
    local port attempt
    for port in "$AMQP_PORT" "$AMQPS_PORT" "$MGMT_PORT"; do
        for ((attempt = 1; attempt <= 30; attempt++)); do
            port_open "$port" && continue 2
            sleep 1
        done
        show_tail "$RABBITMQ_LOG_BASE/$RABBIT_NODE.log"
        die "RabbitMQ runs but nothing listens on 127.0.0.1:$port after 30 s"
    done
}

start_rabbit() {
    local state=0 port
    rabbit_state || state=$?
    case $state in
    0)
        log "RabbitMQ $RABBIT_NODE is already running (pid $(tr -dc '0-9' <"$RABBIT_PID_FILE"))"
        ensure_rabbit_user
        wait_rabbit_listeners
        return 0
        ;;
    2) die "a RabbitMQ node named $RABBIT_NODE is running but not from $DATA_DIR: stop it or set JSM_RABBITMQ_NODENAME" ;;
    esac

    # Not answering. If our node's process is alive, it may still be booting: wait for it.
    local old_pid=""
    [[ -s $RABBIT_PID_FILE ]] && old_pid=$(tr -dc '0-9' <"$RABBIT_PID_FILE")
    if [[ -n $old_pid ]] && rabbit_pid_ours "$old_pid"; then
        log "RabbitMQ pid $old_pid exists but does not answer yet: waiting for it (at most $START_TIMEOUT s)"
        if timeout $((START_TIMEOUT + 30)) "${RABBIT_CTL[@]}" wait "$RABBIT_PID_FILE" \
            --timeout "$START_TIMEOUT" >/dev/null 2>&1 9>&-; then
            wait_rabbit_listeners
            ensure_rabbit_user
            log "RabbitMQ is up"
            return 0
        fi
        show_tail "$RABBITMQ_LOG_BASE/$RABBIT_NODE.log"
        die "RabbitMQ pid $old_pid runs but does not answer: run scripts/services.sh stop, then start again"
    fi
    # A pid file left by a killed node or a restarted container is stale.
    if [[ -e $RABBIT_PID_FILE ]]; then
        log "removing the stale RabbitMQ pid file $RABBIT_PID_FILE"
        rm -f -- "$RABBIT_PID_FILE"
    fi
    for port in "$AMQP_PORT" "$AMQPS_PORT" "$MGMT_PORT" "$DIST_PORT"; do
        port_open "$port" && die "port 127.0.0.1:$port is already used by another program: stop it or choose other ports (JSM_AMQP_PORT, JSM_AMQPS_PORT, JSM_RABBITMQ_MGMT_PORT, JSM_RABBITMQ_DIST_PORT)"
    done

    ensure_tls
    write_rabbit_config
    : >"$RABBIT_STARTUP_LOG"
    log "starting RabbitMQ node $RABBIT_NODE (amqp $AMQP_PORT, amqps $AMQPS_PORT, http $MGMT_PORT)"
    # In the background in a session of its own, so it outlives this script and its terminal.
    # (cd: the node writes into its working directory; it must be one it owns. setsid -w: the
    # launcher's pid lives exactly as long as the server, so an early death is seen at once.)
    local launcher waiter rc=0 second
    (
        cd "$RABBIT_DIR"
        if [[ $RABBIT_USER == "$(id -un)" ]]; then
            exec setsid -w "$RABBIT_BIN/rabbitmq-server"
        else
            exec setsid -w runuser -u "$RABBIT_USER" -- "$RABBIT_BIN/rabbitmq-server"
        fi
    ) >>"$RABBIT_STARTUP_LOG" 2>&1 </dev/null 9>&- &
    launcher=$!

    # `rabbitmqctl wait` returns once the node has booted; bounded by --timeout (and by
    # `timeout` in case the CLI itself hangs). Meanwhile, watch that the server is still alive.
    timeout $((START_TIMEOUT + 30)) "${RABBIT_CTL[@]}" wait "$RABBIT_PID_FILE" \
        --timeout "$START_TIMEOUT" >"$DATA_DIR/logs/rabbitmq-wait.log" 2>&1 9>&- &
    waiter=$!
    for ((second = 0; second < START_TIMEOUT + 40; second++)); do
        kill -0 "$waiter" 2>/dev/null || break
        if ! kill -0 "$launcher" 2>/dev/null; then
            kill "$waiter" 2>/dev/null || true
            rc=255
            break
        fi
        sleep 1
    done
    if ((rc == 0)); then
        wait "$waiter" || rc=$?
    fi
    disown "$launcher" 2>/dev/null || true
    if ((rc != 0)); then
        show_tail "$RABBIT_STARTUP_LOG"
        show_tail "$RABBITMQ_LOG_BASE/$RABBIT_NODE.log"
        show_tail "$DATA_DIR/logs/rabbitmq-wait.log" 10
        if ((rc == 255)); then
            die "RabbitMQ exited while starting (logs above; folder $RABBITMQ_LOG_BASE)"
        fi
        die "RabbitMQ did not come up within $START_TIMEOUT s (logs above; folder $RABBITMQ_LOG_BASE)"
    fi
    wait_rabbit_listeners
    ensure_rabbit_user
    log "RabbitMQ is up"
}

stop_rabbit() {
    local pid="" attempt
    [[ -s $RABBIT_PID_FILE ]] && pid=$(tr -dc '0-9' <"$RABBIT_PID_FILE")
    if [[ -z $pid ]] || ! rabbit_pid_ours "$pid"; then
        log "RabbitMQ $RABBIT_NODE is not running"
        rm -f -- "$RABBIT_PID_FILE"
        return 0
    fi
    log "stopping RabbitMQ $RABBIT_NODE (pid $pid)"
    # `stop PIDFILE` returns once the OS process has exited.
    if ! timeout 120 "${RABBIT_CTL[@]}" -q stop "$RABBIT_PID_FILE" >/dev/null 2>&1 9>&-; then
        log "rabbitmqctl stop failed: sending SIGTERM to pid $pid"
        kill -TERM "$pid" 2>/dev/null || true
    fi
    for ((attempt = 1; attempt <= 60; attempt++)); do
        rabbit_pid_ours "$pid" || break
        sleep 1
    done
    if rabbit_pid_ours "$pid"; then
        log "RabbitMQ pid $pid ignored SIGTERM for 60 s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 1
    fi
    rm -f -- "$RABBIT_PID_FILE"
    log "RabbitMQ stopped"
}

status_rabbit() {
    local state=0
    rabbit_state || state=$?
    case $state in
    0) printf 'rabbitmq  running  node %s pid %s; amqp 127.0.0.1:%s, amqps 127.0.0.1:%s, management http://127.0.0.1:%s\n' \
        "$RABBIT_NODE" "$(tr -dc '0-9' <"$RABBIT_PID_FILE")" "$AMQP_PORT" "$AMQPS_PORT" "$MGMT_PORT" ;;
    2) printf 'rabbitmq  FOREIGN  a node named %s answers but was not started from %s\n' "$RABBIT_NODE" "$DATA_DIR" ;;
    *) printf 'rabbitmq  stopped  node %s (data %s)\n' "$RABBIT_NODE" "$RABBIT_DIR" ;;
    esac
    return "$state"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
pg_pid() {
    [[ -s $PGDATA_DIR/postmaster.pid ]] || return 1
    head -n 1 "$PGDATA_DIR/postmaster.pid" | tr -dc '0-9'
}

# 0: our cluster runs and answers on its port; 1: not running; 2: something else has the port.
pg_state() {
    local pid
    if pid=$(pg_pid) && pid_runs "$pid" "$PGDATA_DIR"; then
        "$(pg_bin_dir)/pg_isready" -q -h "$BIND_ADDRESS" -p "$PG_PORT" -t 5 && return 0
        return 1
    fi
    port_open "$PG_PORT" && return 2
    return 1
}

# psql as the cluster's superuser over the private unix socket (peer authentication).
pg_admin_psql() {
    as_user "$PG_USER" /usr/bin/psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" \
        -U "$PG_USER" -d postgres
}

write_pg_config() {
    local bin=$1 wal_compression=on
    # lz4 is cheaper on the CPU than PostgreSQL's own pglz (what "on" means); Debian builds it in.
    if ldd "$bin/postgres" 2>/dev/null | grep -q 'liblz4'; then
        wal_compression=lz4
    fi
    cat >"$PGDATA_DIR/jsm.conf" <<EOF
# Generated by scripts/services.sh on every start: edit the script, not this file.
listen_addresses = '$BIND_ADDRESS'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
password_encryption = 'scram-sha-256'
# Sized for a 2-core test box running workers side by side.
max_connections = 200
# A 1M-identity scope is about 0.8 GB of rows and 0.3 GB of indexes, all rewritten by the cut: with
# 256MB the cut's UPDATE was 28.6-31.5 s, with 1GB 23.2-24.1 s (allocated as used, not up front).
shared_buffers = 1GB
fsync = on
# A 1M-identity migration writes several GB of WAL (claims, cut, every batch's outcomes): with the
# default max_wal_size of 1GB, WAL volume forced 18 checkpoints in one 1M run, after each of which
# the next write to a page logs the whole page. Compressing those images took the cut's WAL from
# 1.5 to 0.9 GB.
max_wal_size = 4GB
checkpoint_timeout = 15min
wal_compression = $wal_compression
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    # Local socket: peer (the superuser, for administration). TCP: 127.0.0.1 with a password only.
    cat >"$PGDATA_DIR/pg_hba.conf" <<'EOF'
# Generated by scripts/services.sh on every start.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  peer
host    all       all   127.0.0.1/32   scram-sha-256
EOF
    grep -qx "include 'jsm.conf'" "$PGDATA_DIR/postgresql.conf" ||
        printf "\n# Settings of scripts/services.sh (last, so they win).\ninclude 'jsm.conf'\n" \
            >>"$PGDATA_DIR/postgresql.conf"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres:postgres "$PGDATA_DIR/jsm.conf" "$PGDATA_DIR/pg_hba.conf"
    fi
    chmod 600 "$PGDATA_DIR/jsm.conf" "$PGDATA_DIR/pg_hba.conf"
}

# Role jsm with the stored password and database jsm owned by it. The password travels on
# standard input, never on a command line.
ensure_pg_role() {
    local password
    password=$(read_secret postgres-password)
    pg_admin_psql >/dev/null <<EOF || die "could not create the PostgreSQL role and database jsm"
\\set password '$password'
SELECT 'CREATE ROLE jsm LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'jsm') \\gexec
ALTER ROLE jsm WITH LOGIN PASSWORD :'password';
SELECT 'CREATE DATABASE jsm OWNER jsm' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'jsm') \\gexec
EOF
}

start_pg() {
    local state=0 bin pid attempt
    pg_state || state=$?
    case $state in
    0)
        log "PostgreSQL is already running (pid $(pg_pid), port $PG_PORT)"
        ensure_pg_role
        return 0
        ;;
    2) die "port 127.0.0.1:$PG_PORT is already used by another program: stop it or set JSM_POSTGRES_PORT" ;;
    esac
    bin=$(pg_bin_dir)

    if [[ ! -s $PGDATA_DIR/PG_VERSION ]]; then
        log "creating a PostgreSQL $(basename "$(dirname "$bin")") cluster in $PGDATA_DIR"
        rm -rf -- "$PGDATA_DIR"   # a half-made cluster from an interrupted initdb
        if ! as_user "$PG_USER" "$bin/initdb" -D "$PGDATA_DIR" -U "$PG_USER" --encoding=UTF8 \
            --no-locale --auth-local=peer --auth-host=scram-sha-256 >"$DATA_DIR/logs/initdb.log" 2>&1; then
            show_tail "$DATA_DIR/logs/initdb.log"
            die "initdb failed"
        fi
    fi
    # A postmaster.pid whose process is gone is handled by PostgreSQL itself (it also checks that
    # no orphaned backend still uses the cluster). One whose pid now belongs to another program
    # (e.g. after a container restart) would make it refuse to start: that one we remove.
    if pid=$(pg_pid) && [[ -d /proc/$pid ]] && ! pid_runs "$pid" "$PGDATA_DIR"; then
        log "removing the stale PostgreSQL pid file (pid $pid is now another program)"
        rm -f -- "$PGDATA_DIR/postmaster.pid"
    fi
    write_pg_config "$bin"
    if [[ ! -e $PG_LOG ]]; then
        : >"$PG_LOG"
    fi
    [[ $(id -u) -ne 0 ]] || chown postgres:postgres "$PG_LOG"

    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    if ! as_user "$PG_USER" "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$START_TIMEOUT" start >/dev/null 2>&1 9>&-; then
        show_tail "$PG_LOG"
        die "PostgreSQL did not start within $START_TIMEOUT s (log: $PG_LOG)"
    fi
    for ((attempt = 1; attempt <= 30; attempt++)); do
        "$bin/pg_isready" -q -h "$BIND_ADDRESS" -p "$PG_PORT" -t 2 && break
        sleep 1
    done
    if ((attempt > 30)); then
        show_tail "$PG_LOG"
        die "PostgreSQL started but does not accept connections on 127.0.0.1:$PG_PORT after 30 s"
    fi
    ensure_pg_role
    log "PostgreSQL is up"
}

stop_pg() {
    local pid
    if ! pid=$(pg_pid) || ! pid_runs "$pid" "$PGDATA_DIR"; then
        log "PostgreSQL is not running"
        return 0
    fi
    log "stopping PostgreSQL (pid $pid)"
    if ! as_user "$PG_USER" "$(pg_bin_dir)/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null 2>&1; then
        show_tail "$PG_LOG"
        die "PostgreSQL did not stop within 60 s"
    fi
    log "PostgreSQL stopped"
}

status_pg() {
    local state=0
    pg_state || state=$?
    case $state in
    0) printf 'postgres  running  pid %s; 127.0.0.1:%s, database jsm (data %s)\n' "$(pg_pid)" "$PG_PORT" "$PGDATA_DIR" ;;
    2) printf 'postgres  FOREIGN  another program listens on 127.0.0.1:%s\n' "$PG_PORT" ;;
    *) printf 'postgres  stopped  (data %s)\n' "$PGDATA_DIR" ;;
    esac
    return "$state"
}

# ---------------------------------------------------------------------------------------------
# Environment for clients
# ---------------------------------------------------------------------------------------------

# Shell exports for the demo, the tests and the benchmarks. With MASK=1, passwords are masked.
render_env() {
    local mask=${1:-0} amqp_pw pg_pw
    amqp_pw=$(read_secret amqp-password)
    pg_pw=$(read_secret postgres-password)
    if ((mask)); then
        amqp_pw='****'
        pg_pw='****'
    fi
    cat <<EOF
# jsm-migrate local services (scripts/services.sh). Contains passwords: keep it private.
export JSM_DATA_DIR='$DATA_DIR'
export AMQP_URL='amqp://jsm:$amqp_pw@127.0.0.1:$AMQP_PORT/%2f'
export AMQPS_URL='amqps://jsm:$amqp_pw@localhost:$AMQPS_PORT/%2f'
export AMQP_TLS_CA_FILE='$TLS_DIR/ca.pem'
export AMQP_TLS_OTHER_CA_FILE='$TLS_DIR/other-ca.pem'
export AMQP_USER='jsm'
export AMQP_PASSWORD='$amqp_pw'
export RABBITMQ_NODENAME='$RABBIT_NODE'
export JSM_RABBITMQ_MGMT_URL='http://127.0.0.1:$MGMT_PORT'
export POSTGRES_HOST='127.0.0.1'
export POSTGRES_PORT='$PG_PORT'
export POSTGRES_USER='jsm'
export POSTGRES_PASSWORD='$pg_pw'
export POSTGRES_DB='jsm'
export POSTGRES_URL='postgres://jsm:$pg_pw@127.0.0.1:$PG_PORT/jsm'
EOF
}

write_env_file() {
    local tmp
    tmp=$(mktemp "$DATA_DIR/.env.XXXXXX")
    chmod 600 "$tmp"
    render_env 0 >"$tmp"
    mv -f -- "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------
usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

COMMAND=${1:-}
[[ -n $COMMAND ]] || usage
shift
# Which services a start/stop/status applies to.
want_rabbit=1
want_pg=1
if [[ $COMMAND =~ ^(start|stop|status)$ && $# -gt 0 ]]; then
    case $1 in
    rabbitmq) want_pg=0 ;;
    postgres) want_rabbit=0 ;;
    *) usage ;;
    esac
fi

check_settings
# The servers may not be able to enter the caller's working directory (e.g. /root).
cd /

case $COMMAND in
start)
    check_tools
    check_data_dir_reachable
    prepare_layout
    close_inherited_descriptors
    take_lock
    started_at=$(date +%s.%N)
    ensure_secret amqp-password
    ensure_secret postgres-password
    ((want_rabbit == 0)) || start_rabbit
    ((want_pg == 0)) || start_pg
    write_env_file
    elapsed=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started_at" "$(date +%s.%N)")
    log "ready in ${elapsed} s"
    render_env 1 | grep -E '^export (AMQP_URL|AMQPS_URL|AMQP_TLS_CA_FILE|JSM_RABBITMQ_MGMT_URL|POSTGRES_URL)=' |
        sed 's/^export /  /' >&2
    log "environment: source $ENV_FILE   (or: eval \"\$(scripts/services.sh env)\")"
    log "logs: $DATA_DIR/logs   stop: scripts/services.sh stop"
    ;;
stop)
    if [[ ! -d $DATA_DIR ]]; then
        log "nothing to stop: $DATA_DIR does not exist"
        exit 0
    fi
    take_lock
    ((want_rabbit == 0)) || stop_rabbit
    ((want_pg == 0)) || stop_pg
    ;;
status)
    rc=0
    if ((want_rabbit)); then status_rabbit || rc=1; fi
    if ((want_pg)); then status_pg || rc=1; fi
    exit "$rc"
    ;;
env)
    render_env 0
    ;;
rabbitmqctl)
    rabbit_ctl "$@"
    ;;
restart-postgres)
    # A drill for clients' recovery (scripts/fault-suite.sh): every connection is cut (fast stop:
    # sessions rolled back), then the same cluster comes back on the same port.
    close_inherited_descriptors
    take_lock
    stop_pg
    start_pg
    ;;
psql)
    PGPASSWORD=$(read_secret postgres-password) exec /usr/bin/psql -h "$BIND_ADDRESS" -p "$PG_PORT" -U jsm -d jsm "$@"
    ;;
-h | --help | help) usage ;;
*) usage ;;
esac
