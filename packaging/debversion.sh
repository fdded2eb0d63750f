#!/usr/bin/env bash
# debversion.sh VERSION — turns a `git describe --tags --always --dirty` string
# (the Makefile's VERSION) into a Debian package version, printed on stdout.
#
#   v1.2.0                 -> 1.2.0
#   v1.2.0-rc1             -> 1.2.0~rc1               (a pre-release sorts before 1.2.0)
#   v1.2.0-14-g1e0dcd6     -> 1.2.0+14.g1e0dcd6       (14 commits after the tag sorts after it)
#   v1.2.0-14-g1e0dcd6-dirty -> 1.2.0+14.g1e0dcd6.dirty
#   1e0dcd6 (no tag yet)   -> 0.0.0~git<N>.g1e0dcd6   (N = commits on HEAD when git can tell:
#                                                       later snapshots sort higher)
#   dev (no git)           -> 0.0.0~dev
#
# Everything before any real release sorts below 0.0.0, so the first tagged
# release upgrades every snapshot.
set -euo pipefail

v="${1:-}"
v="${v#v}"
dirty=""
if [[ "$v" == *-dirty ]]; then
	v="${v%-dirty}"
	dirty="dirty"
fi

if [[ "$v" =~ ^[0-9]+\.[0-9]+ ]]; then
	# A release tag, perhaps with commits after it.
	base="$v" snap=""
	if [[ "$v" =~ ^(.+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		base="${BASH_REMATCH[1]}"
		snap="${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}"
	fi
	base="${base//-/\~}" # 1.2.0-rc1 -> 1.2.0~rc1
	out="$base"
	[[ -n "$snap" ]] && out="$out+$snap"
elif [[ "$v" =~ ^[0-9a-f]{4,40}$ ]]; then
	# A bare commit hash: no tag yet.
	n="$(git rev-list --count "$v" 2>/dev/null || true)"
	if [[ -n "$n" ]]; then
		out="0.0.0~git$n.g$v"
	else
		out="0.0.0~git$v"
	fi
elif [[ -n "$v" ]]; then
	out="0.0.0~$v"
else
	out="0.0.0~unknown"
fi

if [[ -n "$dirty" ]]; then
	if [[ "$out" == *[+~]* ]]; then out="$out.$dirty"; else out="$out+$dirty"; fi
fi
# Only what Debian allows in an upstream version without a revision.
out="$(printf '%s' "$out" | tr -c 'A-Za-z0-9.+~' '.')"
printf '%s\n' "$out"
