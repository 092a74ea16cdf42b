#!/usr/bin/env bash
# Builds the Debian package of geneve-ovs with dpkg-deb (part of dpkg, on every Debian host: no
# packaging tool to install or pin). Everything it ships comes from this tree: the release
# binary, the man pages and shell completions that binary generates from its own command-line
# definition, the systemd units and the firewall files.
#
#   contrib/deb/build.sh [OUT_DIR]       (default target/debian; prints the .deb's path)
#
# GENEVE_OVS_BIN names an already built binary to package instead of running
# `cargo build --release` (the test suite passes the one it tests).
#
# What goes where:
#   /usr/libexec/netavark/geneve-ovs          the plugin (netavark looks for plugins here)
#   /usr/sbin/geneve-ovs                      the operator command (a symlink to the plugin)
#   /usr/lib/systemd/system/geneve-ovs-{gc,flows}.service   enabled on install, like any
#                                             Debian package's units (not started)
#   /usr/lib/firewalld/services/geneve.xml    firewalld's "geneve" service
#   /usr/share/geneve-ovs/geneve-ovs.nft      the plain-nftables template (edit the peer sets)
#   /usr/share/man/man1/geneve-ovs*.1.gz, man5/geneve-ovs-options.5.gz
#   bash, zsh and fish completions in their vendor directories
#   /usr/share/doc/geneve-ovs/examples/       the quadlet units of contrib/quadlet/
set -euo pipefail

cd "$(dirname "$0")/../.."
out=${1:-target/debian}
mkdir -p "$out"
out=$(readlink -f "$out")

if [[ -n ${GENEVE_OVS_BIN:-} ]]; then
	bin=$(readlink -f "$GENEVE_OVS_BIN")
else
	cargo build --release --locked
	bin=$PWD/target/release/geneve-ovs
fi
[[ -x $bin ]] || { echo "build.sh: $bin is not an executable" >&2; exit 1; }

version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
[[ $version =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || { echo "build.sh: odd version '$version'" >&2; exit 1; }

# The oldest C library the binary works with: the newest GLIBC_ symbol version it uses, else
# (no objdump) the build host's own version, which is never too old.
glibc=$(objdump -T "$bin" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1 || true)
if [[ -z $glibc ]]; then
	glibc=$(dpkg-query -W -f='${Version}' libc6 | sed 's/-.*//')
fi

stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -D -m 0755 "$bin" "$root/usr/libexec/netavark/geneve-ovs"
strip --strip-unneeded "$root/usr/libexec/netavark/geneve-ovs" 2>/dev/null || true
install -d "$root/usr/sbin"
ln -s ../libexec/netavark/geneve-ovs "$root/usr/sbin/geneve-ovs"
install -D -m 0644 -t "$root/usr/lib/systemd/system" \
	contrib/systemd/geneve-ovs-gc.service contrib/systemd/geneve-ovs-flows.service
install -D -m 0644 contrib/firewall/geneve.xml "$root/usr/lib/firewalld/services/geneve.xml"
install -D -m 0644 contrib/firewall/geneve-ovs.nft "$root/usr/share/geneve-ovs/geneve-ovs.nft"

man=$stage/man
"$bin" manpages "$man" >/dev/null
for page in "$man"/*; do
	section=${page##*.}
	install -D -m 0644 "$page" "$root/usr/share/man/man$section/${page##*/}"
	gzip -9n "$root/usr/share/man/man$section/${page##*/}"
done
install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
	"$root/usr/share/fish/vendor_completions.d"
"$bin" completions bash >"$root/usr/share/bash-completion/completions/geneve-ovs"
"$bin" completions zsh >"$root/usr/share/zsh/vendor-completions/_geneve-ovs"
"$bin" completions fish >"$root/usr/share/fish/vendor_completions.d/geneve-ovs.fish"

doc=$root/usr/share/doc/geneve-ovs
install -d "$doc"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: geneve-ovs

Files: *
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
gzip -9n -c README.md >"$doc/README.md.gz"
chmod 0644 "$doc"/*
install -D -m 0644 -t "$doc/examples" contrib/quadlet/net1.network contrib/quadlet/web.container

install -d "$root/DEBIAN"
installed_size=$(du -k -s --apparent-size "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: geneve-ovs
Version: $version
Architecture: $arch
Maintainer: geneve-ovs maintainers <root@localhost>
Installed-Size: $installed_size
Depends: libc6 (>= $glibc), libgcc-s1, openvswitch-switch, nftables, podman (>= 4.5), netavark (>= 1.6)
Section: net
Priority: optional
Description: multi-host layer-2 overlay networks for podman on Open vSwitch
 A netavark plugin: podman networks created with --driver geneve-ovs get an
 Open vSwitch bridge on every host, joined by GENEVE tunnels into one layer-2
 segment, with per-container port security, duplicate-address detection and
 address ranges that stay disjoint without coordination. The geneve-ovs
 command shows tunnel health, removes leftovers and changes a running
 network's hosts.
CONTROL
for script in postinst prerm postrm; do
	install -m 0755 "contrib/deb/$script" "$root/DEBIAN/$script"
done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
	xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"

deb=$out/geneve-ovs_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
