#!/bin/bash
# The host half of disaster recovery: every INTERVAL seconds, ships what is
# new on disk 2 to a copy, here or on another machine over ssh.  The guest
# half takes the checkpoints: ntc-dkms's ntc-checkpoint.timer, or any
# `echo checkpoint > /proc/ntc`.  The copy's own state says what to send
# (ntc-receive --status), so nothing is kept here between rounds.
# Documentation/userland.md, "Shipping checkpoints".
#
#   scripts/ntc-ship-loop.sh [--once] [--keep K] DISK2 COPY [INTERVAL]
#   scripts/ntc-ship-loop.sh [--once] [--keep K] DISK2 HOST:COPY [INTERVAL]
#
# --once ships once and exits with the transfer's status; --keep K (default
# 3) keeps the last K generations on the receiving side.  ntc-send and
# ntc-receive are taken from $NTC_BIN if set, else from PATH (on HOST too).
set -u -o pipefail

once=false keep=3
while [ $# -gt 0 ]; do
	case $1 in
	--once) once=true; shift ;;
	--keep) keep=$2; shift 2 ;;
	*) break ;;
	esac
done
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "usage: $0 [--once] [--keep K] DISK2 [HOST:]COPY [INTERVAL]" >&2
	exit 2
fi
disk2=$1 dest=$2 interval=${3:-60}
bin=${NTC_BIN:+$NTC_BIN/}
case $dest in
*:*) host=${dest%%:*} copy=${dest#*:}
	# %q quotes each argument for the remote shell, so expanding here is meant.
	# shellcheck disable=SC2029
	on_copy() { ssh "$host" "$(printf '%q ' "$@")"; } ;;
*) copy=$dest
	on_copy() { "$@"; } ;;
esac

json_number() {
	sed -n "s/^ *\"$1\": *\([0-9]*\).*/\1/p" | head -n1
}

# One round, which reads no more than page 0 of each disk unless there is
# something to send: nothing while disk 2 holds no complete checkpoint newer
# than the copy's (none yet, one being written or its journal being put in
# place, nothing new).
ship() {
	local status resumable generation history_since have since=()
	status=$("${bin}ntc-receive" --status --json "$disk2") || return 1
	resumable=$(grep -c '"resumable": true' <<<"$status")
	generation=$(json_number generation <<<"$status")
	history_since=$(json_number history_since <<<"$status")
	[ "$resumable" = 1 ] || return 0
	! grep -q '"journal_pending": true' <<<"$status" || return 0
	have=$(on_copy "${bin}ntc-receive" --status --json "$copy" | json_number generation)
	[ -n "$have" ] || return 1
	[ "$have" -lt "$generation" ] || return 0
	# A copy older than disk 2's change history (or none) takes everything.
	if [ "$have" -gt 0 ] && [ "$have" -ge "$history_since" ]; then
		since=(--since "$have")
	fi
	"${bin}ntc-send" "$disk2" "${since[@]}" | on_copy "${bin}ntc-receive" "$copy" --keep "$keep"
}

while :; do
	ship
	status=$?
	$once && exit $status
	[ $status -eq 0 ] || echo "$0: this round failed (status $status); trying again in ${interval}s" >&2
	sleep "$interval"
done
