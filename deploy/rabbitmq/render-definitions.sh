#!/usr/bin/env bash
# render-definitions.sh: definitions.json with real password hashes, for `rabbitmqctl import_definitions`.
#
# Usage: deploy/rabbitmq/render-definitions.sh --output FILE|- [--password-dir DIR]
#            [--definitions FILE] [--vhost NAME] [--user-suffix SUFFIX]
#
# The committed definitions.json carries an empty password hash for every user: such a user exists
# with its permissions but cannot log in. This script reads each user's password and writes a copy
# whose users carry a salted SHA-256 hash (RabbitMQ's default `rabbit_password_hashing_sha256`), so
# one import creates the users ready to log in. The password of user jsm-worker comes from
#   the file DIR/jsm-worker (first line) when --password-dir DIR (or JSM_RABBITMQ_PASSWORD_DIR) is set,
#   else the variable JSM_RABBITMQ_PASSWORD_WORKER (the user name without "jsm-", upper case, - -> _).
# A missing or empty password is an error naming the user and where it was looked for.
#
#   --output FILE      where to write (mode 600, replaced atomically); "-" writes to standard output,
#                      to pipe into `rabbitmqctl import_definitions --format json` without a file.
#   --definitions FILE the definitions to render (default: definitions.json beside this script).
#   --vhost NAME       put everything in vhost NAME instead of jsm (e.g. a staging vhost on a shared
#                      broker); the programs' AMQP URL must then name it (amqp://host/NAME).
#   --user-suffix S    append S to every user name (e.g. -staging); passwords are still looked up
#                      under the names of the file (DIR/jsm-worker, JSM_RABBITMQ_PASSWORD_WORKER).
#
# Passwords are never printed, logged or put on a command line; only their salted hashes are written.
# Needs python3 (standard library only).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
definitions=$SCRIPT_DIR/definitions.json
output=""
password_dir=${JSM_RABBITMQ_PASSWORD_DIR:-}
vhost=""
user_suffix=""

usage() {
    sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
die() {
    printf 'render-definitions: error: %s\n' "$*" >&2
    exit 1
}

while (($# > 0)); do
    case $1 in
    --output) (($# >= 2)) || usage; output=$2; shift 2 ;;
    --definitions) (($# >= 2)) || usage; definitions=$2; shift 2 ;;
    --password-dir) (($# >= 2)) || usage; password_dir=$2; shift 2 ;;
    --vhost) (($# >= 2)) || usage; vhost=$2; shift 2 ;;
    --user-suffix) (($# >= 2)) || usage; user_suffix=$2; shift 2 ;;
    -h | --help) usage ;;
    *) printf 'render-definitions: unknown argument %s\n' "$1" >&2; usage ;;
    esac
done
[[ -n $output ]] || usage
[[ -r $definitions ]] || die "cannot read the definitions file $definitions"
[[ -z $password_dir || -d $password_dir ]] || die "--password-dir $password_dir is not a folder"
command -v python3 >/dev/null || die "python3 is needed (standard library only)"
[[ -z $vhost || $vhost =~ ^[A-Za-z0-9._-]+$ ]] || die "--vhost must be letters, digits, '.', '_' or '-'"
[[ -z $user_suffix || $user_suffix =~ ^[A-Za-z0-9._-]+$ ]] || die "--user-suffix must be letters, digits, '.', '_' or '-'"

render() {
    # The Python program comes from a here-document on standard input; the passwords come from
    # files or the environment only.
    python3 - "$definitions" "$password_dir" "$vhost" "$user_suffix" <<'PY'
import base64, hashlib, json, os, sys

definitions_path, password_dir, vhost, user_suffix = sys.argv[1:5]

def fail(message):
    sys.stderr.write("render-definitions: error: " + message + "\n")
    sys.exit(1)

try:
    with open(definitions_path, encoding="utf-8") as handle:
        definitions = json.load(handle)
except (OSError, ValueError) as error:
    fail("cannot read %s as JSON: %s" % (definitions_path, error))

def password_of(user):
    if password_dir:
        path = os.path.join(password_dir, user)
        try:
            with open(path, encoding="utf-8") as handle:
                password = handle.readline().rstrip("\r\n")
        except OSError:
            fail("no password for user %s: cannot read %s" % (user, path))
        if not password:
            fail("no password for user %s: the first line of %s is empty" % (user, path))
        return password
    role = user[4:] if user.startswith("jsm-") else user
    variable = "JSM_RABBITMQ_PASSWORD_" + role.upper().replace("-", "_").replace(".", "_")
    password = os.environ.get(variable, "")
    if not password:
        fail("no password for user %s: set %s or pass --password-dir" % (user, variable))
    return password

def salted_sha256(password):
    salt = os.urandom(4)
    digest = hashlib.sha256(salt + password.encode("utf-8")).digest()
    return base64.b64encode(salt + digest).decode("ascii")

renamed = {}
for user in definitions.get("users", []):
    name = user["name"]
    user["password_hash"] = salted_sha256(password_of(name))
    user["hashing_algorithm"] = "rabbit_password_hashing_sha256"
    renamed[name] = name + user_suffix
    user["name"] = renamed[name]
for key in ("permissions", "topic_permissions"):
    for entry in definitions.get(key, []):
        entry["user"] = renamed.get(entry["user"], entry["user"] + user_suffix)
if vhost:
    for entry in definitions.get("vhosts", []):
        entry["name"] = vhost
    for key in ("permissions", "topic_permissions", "parameters", "policies", "queues", "exchanges", "bindings"):
        for entry in definitions.get(key, []):
            entry["vhost"] = vhost

json.dump(definitions, sys.stdout, indent=2)
sys.stdout.write("\n")
PY
}

if [[ $output == - ]]; then
    render
    exit 0
fi
output_dir=$(dirname -- "$output")
[[ -d $output_dir ]] || die "the folder of --output ($output_dir) does not exist"
tmp=$(umask 077 && mktemp "$output_dir/.definitions.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
render >"$tmp"
chmod 600 "$tmp"
mv -f -- "$tmp" "$output"
trap - EXIT
printf 'render-definitions: wrote %s (mode 600; it holds password hashes: import it, then delete it)\n' "$output" >&2
