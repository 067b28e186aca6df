#!/usr/bin/env bash
# Makes a small OCI image out of this machine's own files and imports it into podman: what the
# tests and the demo run as "a customer's image", since no registry can be reached. It holds a
# shell and the usual tools, and Python 3 with its standard library (no site packages); /etc holds
# only passwd and group. Nothing is done when podman has the image already.
#
#   scripts/make-test-image.sh [NAME]      # default localhost/tessera-tools:1
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin  # the system's own tools and Python, not a user's shims
name=${1:-localhost/tessera-tools:1}
podman image exists "$name" 2>/dev/null && exit 0
root=$(mktemp -d /tmp/tessera-image-XXXXXX)
trap 'rm -rf "$root"' EXIT

# A file of the host at its real path in the image (merged /usr: /bin is /usr/bin).
copy() {
  local real dir
  real=$(readlink -f "$1")
  dir=$(readlink -f "$(dirname "$1")")
  if [ ! -e "$root$real" ]; then
    mkdir -p "$root$(dirname "$real")"
    cp -a "$real" "$root$real"
  fi
  # The name it was asked by (libfoo.so.1 for libfoo.so.1.2.3; /lib64/ld-linux… for the loader), as a link.
  if [ "$dir/$(basename "$1")" != "$real" ] && [ ! -e "$root$dir/$(basename "$1")" ]; then
    mkdir -p "$root$dir"
    ln -s "$real" "$root$dir/$(basename "$1")"
  fi
  return 0
}
with_libraries() {
  copy "$1"
  { ldd "$1" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do copy "$lib"; done
}

mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/usr/lib64" "$root/usr/sbin"
for link in bin lib lib64 sbin; do ln -s "usr/$link" "$root/$link"; done
for tool in sh bash cat echo env grep ls head tail id sleep setsid unshare true false tr wc python3; do
  with_libraries "$(type -P "$tool")"
done
python=$(readlink -f "$(command -v python3)")
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
mkdir -p "$root$stdlib"
tar -C "$stdlib" --exclude=./dist-packages --exclude=./site-packages --exclude='./config-*' --exclude=./test \
  --exclude=./idlelib --exclude=./tkinter --exclude=./ensurepip --exclude=./lib2to3 -cf - . | tar -C "$root$stdlib" -xf -
for module in "$root$stdlib"/lib-dynload/*.so; do
  { ldd "$module" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do copy "$lib"; done
done
mkdir -p "$root/etc" "$root/tmp" "$root/proc" "$root/dev" "$root/sys" "$root/run" "$root/job" "$root/root"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
tar -C "$root" -cf - . | podman import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - "$name" >/dev/null
echo "made $name ($(du -sh "$root" | cut -f1), python $("$python" -c 'import sys; print(sys.version.split()[0])'))"
