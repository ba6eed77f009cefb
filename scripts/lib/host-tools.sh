# Sourced by the setup scripts: installs the Debian packages whose tool is missing.
# Each entry is PACKAGE:PROBE, where PROBE is a command name or an absolute file path.

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_host_tools "pkg:cmd pkg:/path ...": one apt-get run for all that are missing, none when
# everything is there (so a second run costs nothing).
ensure_host_tools() {
	local missing=() pkg probe entry
	for entry in $1; do
		pkg=${entry%%:*}
		probe=${entry#*:}
		if [[ $probe == /* ]]; then [ -e "$probe" ] && continue; else command -v "$probe" >/dev/null && continue; fi
		missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return
	echo "setup: installing ${missing[*]}" >&2
	# One index (bookworm-security i386) often fails to download; the packages still resolve.
	as_root apt-get update -qq || true
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
