#!/usr/bin/env bash
# Build the "tiny" Topolab guest image: Debian's cloud kernel + an initramfs of busybox-static and the virtio
# network modules, booted directly by qemu (-kernel/-initrd/-append). Boots to a root shell on ttyS0 in a few
# seconds under TCG, runs udhcpc on every NIC (or takes static addresses from the kernel command line, see
# scripts/tiny-init), and powers off on the ACPI power button.
#
#   scripts/build-tiny-image.sh [OUTDIR]     default: ${TOPOLAB_IMAGE_DIR:-<repo>/var/images}/tiny
#
# Output: OUTDIR/vmlinuz, OUTDIR/initrd.gz, OUTDIR/manifest.json (written last). Idempotent: exits at once when
# all three exist and the manifest is newer than this script and the guest init. Needs root (apt-get, mknod).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OUTDIR=${1:-${TOPOLAB_IMAGE_DIR:-$ROOT/var/images}/tiny}
INIT=$HERE/tiny-init
# insmod order (FACTS.md); evdev + button give acpid the ACPI power button.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net
         evdev button)
export DEBIAN_FRONTEND=noninteractive
work=""  # build directory, removed on exit

log() { printf '==> %s\n' "$*"; }
die() { printf 'build-tiny-image: %s\n' "$*" >&2; exit 1; }

up_to_date() {
    local f
    for f in vmlinuz initrd.gz manifest.json; do [ -s "$OUTDIR/$f" ] || return 1; done
    [ "$OUTDIR/manifest.json" -nt "$0" ] && [ "$OUTDIR/manifest.json" -nt "$INIT" ]
}

ensure_packages() {
    local missing=() pkg
    for pkg in busybox-static cpio gzip; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
}

# The concrete kernel package behind the linux-image-cloud-amd64 metapackage (linux-image-6.1.0-NN-cloud-amd64).
kernel_package() {
    local pkg
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -q >&2
        pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || die "cannot resolve the package behind linux-image-cloud-amd64"
    echo "$pkg"
}

main() {
    if up_to_date; then
        log "tiny image up to date in $OUTDIR"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "needs root (apt-get, mknod /dev/console in the initramfs)"
    [ -f "$INIT" ] || die "guest init $INIT is missing"
    ensure_packages

    local kpkg kver kdir stage m ko
    work=$(mktemp -d /tmp/topolab-tiny.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    kpkg=$(kernel_package)
    log "downloading $kpkg"
    # apt drops privileges to _apt for downloads; let it write into the work dir.
    id -u _apt >/dev/null 2>&1 && chown _apt "$work"
    (cd "$work" && apt-get download -q "$kpkg" >/dev/null)
    dpkg -x "$work"/"$kpkg"_*.deb "$work/kernel"
    kver=$(ls "$work/kernel/lib/modules")
    kdir=$work/kernel/lib/modules/$kver
    [ -f "$work/kernel/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $kpkg"

    log "assembling initramfs (kernel $kver)"
    stage=$work/root
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,root,var,lib/modules}
    ln -s /run "$stage/var/run"
    cp /bin/busybox "$stage/bin/busybox"
    "$stage/bin/busybox" --list-full | while read -r applet; do
        [ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
    done
    : >"$stage/lib/modules/load.order"
    for m in "${MODULES[@]}"; do
        ko=$(find "$kdir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)
        [ -n "$ko" ] || die "module $m not found in $kpkg"
        case "$ko" in
        *.ko.xz) busybox unxz -c "$ko" >"$stage/lib/modules/$m.ko" ;;
        *.ko.zst) die "module $ko is zstd-compressed; busybox insmod cannot load it" ;;
        *) cp "$ko" "$stage/lib/modules/$m.ko" ;;
        esac
        echo "$m" >>"$stage/lib/modules/load.order"
    done
    mknod -m 600 "$stage/dev/console" c 5 1
    mknod -m 666 "$stage/dev/null" c 1 3
    install -m 755 "$INIT" "$stage/init"

    cat >"$stage/etc/inittab" <<'EOF'
::sysinit:/bin/true
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
EOF
    cat >"$stage/etc/profile" <<'EOF'
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
export PS1='\h:\w# '
cd "$HOME"
EOF
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
    printf 'root:x:0:\n' >"$stage/etc/group"
    mkdir -p "$stage/etc/acpi/PWRF"
    printf '#!/bin/sh\nexec /sbin/poweroff\n' >"$stage/etc/acpi/PWRF/00000080"
    chmod 755 "$stage/etc/acpi/PWRF/00000080"
    cat >"$stage/etc/udhcpc.script" <<'EOF'
#!/bin/sh
# udhcpc event script: $interface $ip $mask (prefix length) $router $dns
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up ;;
bound|renew)
    if ! ip -4 addr show dev "$interface" | grep -q " $ip/$mask "; then
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/$mask" dev "$interface"
    fi
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "topolab: $interface $1 $ip/$mask router ${router:-none}" >/dev/console ;;
esac
exit 0
EOF
    chmod 755 "$stage/etc/udhcpc.script"

    (cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 >"$work/initrd.gz"
    cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"

    mkdir -p "$OUTDIR"
    rm -f "$OUTDIR/manifest.json"
    install -m 644 "$work/vmlinuz" "$OUTDIR/vmlinuz"
    install -m 644 "$work/initrd.gz" "$OUTDIR/initrd.gz"
    local size sk si kdeb_ver
    size=$(( $(stat -c %s "$OUTDIR/vmlinuz") + $(stat -c %s "$OUTDIR/initrd.gz") ))
    sk=$(sha256sum "$OUTDIR/vmlinuz" | cut -d' ' -f1)
    si=$(sha256sum "$OUTDIR/initrd.gz" | cut -d' ' -f1)
    kdeb_ver=$(dpkg-deb -f "$work"/"$kpkg"_*.deb Version)
    cat >"$OUTDIR/manifest.json.tmp" <<EOF
{
  "name": "tiny",
  "format": "kernel",
  "kernel": "vmlinuz",
  "initrd": "initrd.gz",
  "append": "console=ttyS0 panic=-1 quiet",
  "memory": 128,
  "os_hint": "linux-busybox",
  "size": $size,
  "sha256": {"vmlinuz": "$sk", "initrd.gz": "$si"},
  "added": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "source": "$kpkg $kdeb_ver + busybox-static $(dpkg-query -W -f='${Version}' busybox-static)"
}
EOF
    mv "$OUTDIR/manifest.json.tmp" "$OUTDIR/manifest.json"
    log "tiny image ready in $OUTDIR ($size bytes)"
}

main "$@"
