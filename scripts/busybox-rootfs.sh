#!/usr/bin/env bash
# Builds a small root filesystem tarball from Debian's busybox-static: the demo and test image.
# Usage: scripts/busybox-rootfs.sh OUT.tar
set -euo pipefail
out=${1:?usage: $0 OUT.tar}
busybox=/bin/busybox
[ -x "$busybox" ] || { echo "busybox-static is not installed (apt-get install busybox-static)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,home/user,proc,sys,dev,var/tmp}
chmod 1777 "$dir/tmp" "$dir/var/tmp"
cp "$busybox" "$dir/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
cat > "$dir/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$dir/etc/group" <<'G'
root:x:0:
users:x:100:user
user:x:1000:
nogroup:x:65534:
G
chown 1000:1000 "$dir/home/user"
echo "bulkhead demo image (busybox $("$busybox" | head -1 | awk '{print $2}'))" > "$dir/etc/motd"
tar --numeric-owner -C "$dir" -cf "$out" .
