# common.sh — shared by the example hooks (sourced, not run).
#
# A hook is run by rete-agent once per new inbox file:
#   on_message = /path/to/hook.sh /path/to/agent.ini
# so the hook sees $1 = its agent.ini and $2 = the inbox file, with
# RETE_INDEX = the entry's log index. It may run again after a crash: the
# hooks keep a small record of the inbox files they handled, next to
# agent.ini. By file name, not by RETE_INDEX: after a restore of the
# broker's store two inbox files can carry one index (docs/agent.md, Hook).
set -eu

HOOK_INI=$1
HOOK_FILE=$2
HOOK_DIR=$(dirname "$HOOK_INI")
HOOK_SEEN="$HOOK_DIR/hook-handled.txt"
HOOK_NAME=$(basename "$HOOK_FILE")

# hook_once: exit quietly when this inbox file was handled already.
hook_once() {
	touch "$HOOK_SEEN"
	if grep -qxF "$HOOK_NAME" "$HOOK_SEEN"; then
		exit 0
	fi
}

# hook_done: remember this inbox file.
hook_done() {
	echo "$HOOK_NAME" >>"$HOOK_SEEN"
}

# field JQ: one value of the inbox file ("" when absent).
field() {
	jq -r "$1 // empty" "$HOOK_FILE"
}

# send: queue the JSON document on stdin with `rete send` and wait for the
# broker's receipt, so that the steps of a story keep their order.
send() {
	local tmp
	tmp=$(mktemp "$HOOK_DIR/hook-XXXXXX.json")
	cat >"$tmp"
	rete send -c "$HOOK_INI" "$tmp" --wait 30 >/dev/null
	rm -f "$tmp"
}
