#!/bin/sh
# Print `systemd-analyze security` for both units and fail above each one's
# threshold (the scores the units' comments justify, line by line).
#
#   packaging/security-score.sh [UNIT_DIR]
#
# UNIT_DIR: where the unit files are (default: this checkout's systemd/;
# /usr/lib/systemd/system on a host with the package installed). The files
# are analysed offline (systemd >= 250), so no running systemd is needed.
set -eu
dir=${1:-$(cd "$(dirname "$0")/.." && pwd)/systemd}

# unit  threshold (systemd-analyze's scale: exposure x 10)
thresholds="taint-guard-check.service 24
taint-guard.service 34"

fail=0
echo "$thresholds" | while read -r unit max; do
	echo "== $unit (fails above $(echo "$max" | sed 's/.$/.&/'))"
	if ! systemd-analyze security --offline=true --no-pager --threshold="$max" "$dir/$unit"; then
		echo "FAIL: $unit is above its threshold" >&2
		exit 1
	fi
done || fail=1
exit $fail
