#!/usr/bin/env bash
# setup-host.sh — install everything the vflag build, tests and testbed need on a
# Debian 12 (bookworm) machine. Idempotent: a second run only checks.
#
#   - apt source for bookworm-backports (QEMU >= 8 with the igb device, libvirt 11)
#   - host packages: QEMU, iproute2, busybox-static, kmod, cpio, xz, libvirt-dev (cgo),
#     debootstrap and e2fsprogs (the libvirt flavour's Debian root disk)
#
# The guest kernel is NOT installed on the host: testenv downloads its .deb into the
# asset cache and extracts it there (see testenv/image). Likewise the libvirt flavour's
# root file system (QEMU 10, libvirt 11) is debootstrapped into the cache, not the host.
set -euo pipefail

say() { printf '[setup-host] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	say "must run as root (apt-get, network namespaces, QEMU taps)"
	exit 1
fi

. /etc/os-release
if [ "${VERSION_CODENAME:-}" != "bookworm" ]; then
	say "warning: tested on Debian 12 (bookworm); this is ${PRETTY_NAME:-unknown}"
fi

src=/etc/apt/sources.list.d/vflag-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	say "adding bookworm-backports apt source ($src)"
	cat >"$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	rm -f /var/lib/vflag-setup/apt-updated
fi

mkdir -p /var/lib/vflag-setup
stamp=/var/lib/vflag-setup/apt-updated
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440 2>/dev/null)" ]; then
	say "apt-get update"
	apt-get update -qq
	touch "$stamp"
fi

# Packages from bookworm itself.
base=(iproute2 iputils-ping busybox-static kmod cpio xz-utils zstd ca-certificates make gcc git pkg-config tcpdump ethtool protobuf-compiler debootstrap e2fsprogs)
# Packages that must come from backports (QEMU 7.2 in bookworm has no igb).
bpo=(qemu-system-x86 qemu-utils libvirt-dev rdmacm-utils ibverbs-utils ibverbs-providers)

missing=()
for p in "${base[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

need_bpo=0
for p in "${bpo[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || need_bpo=1; done
if ! qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'; then need_bpo=1; fi
if [ "$need_bpo" = 1 ]; then
	say "installing ${bpo[*]} from bookworm-backports (QEMU with igb; takes a minute)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports "${bpo[@]}"
fi

if ! qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'; then
	say "qemu-system-x86_64 has no igb device: $(qemu-system-x86_64 --version | head -1)"
	exit 1
fi
say "ok: $(qemu-system-x86_64 --version | head -1), igb present"
