#!/usr/bin/env bash
# Prints the Debian archive URI this host's apt already uses for bookworm
# (main archive, or the security archive with --security), so image scripts
# never hard-code a mirror. Reads deb822 .sources files and one-line lists.
set -euo pipefail
want=bookworm
[ "${1:-}" = --security ] && want=bookworm-security
uri=$(
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
		[ -r "$f" ] || continue
		cat "$f"
		echo
	done | awk -v want="$want" '
		/^URIs:/   { uris = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == want) hit = 1 }
		/^[ \t]*$/ { if (uris != "" && hit) { print uris; exit } uris = ""; hit = 0 }
		/^deb / { for (i = 3; i <= NF; i++) if ($i == want) { print $2; exit } }
	'
)
[ -n "$uri" ] || { echo "apt-mirror: no apt source for $want on this host; configure apt first" >&2; exit 1; }
echo "$uri"
