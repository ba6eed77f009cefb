#!/usr/bin/env bash
# Builds the blockgraph test guest from Debian packages (DESIGN.md §5): a 32-bit Debian kernel and
# busybox in an initramfs booted by syslinux from a raw MBR disk.
#
#   partition 1  FAT16, bootable, 8 MiB: ldlinux.sys, vmlinuz, initrd.gz, syslinux.cfg
#   partition 2  raw test area, 3 MiB: a seeded 1 MiB region, the control block and boot counter
#                (run-time options from the host, scripts/guest/init), then room for the guest's writes
#
# Output: guest/out/guest.raw and guest/out/guest.json (the layout the tests read: partition
# offsets, seed sha256, where the init writes its pattern). Downloads are cached in .cache/guest/;
# delete that folder to fetch newer packages. A run with nothing changed only checks a stamp.
# Needs root or sudo only to install missing host tools and to add the i386 architecture.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=$ROOT/.cache/guest
OUT=$ROOT/guest/out
GUEST_SRC=$ROOT/scripts/guest

# Disk layout, in 512-byte sectors.
P1_START=2048
P1_SECTORS=16384
P2_START=$((P1_START + P1_SECTORS))
P2_SECTORS=6144
DISK_SECTORS=$((P2_START + P2_SECTORS))

# Test area layout, in bytes from the start of partition 2 (the init reads these; the host side
# is src/frontends/guest-control.ts).
SEED_BYTES=1048576
CTL_OFFSET=1048576
CTL_MAGIC=BLOCKGRAPH-CTL
COUNTER_OFFSET=$((CTL_OFFSET + 4096))
IOERROR_OFFSET=$((CTL_OFFSET + 8192))
PATTERN_OFFSET=$((CTL_OFFSET + 65536))
PATTERN_BYTES=65536
PATTERN_TEXT=BLOCKGRAPH-PATTERN
LOOP_OFFSET=2097152
LOOP_COUNT=8

# Disk modules in dependency order (each .ko's depends= checked with modinfo): IDE disks, the
# ATAPI CD-ROM (sr_mod: scsi_mod, cdrom, scsi_common), virtio-blk (virtio_pci: virtio_ring,
# virtio_pci_modern_dev, virtio_pci_legacy_dev, virtio; virtio_blk: virtio, virtio_ring).
MODULES="scsi_common scsi_mod libata ata_piix crc64 crc64_rocksoft_generic crc64-rocksoft
crct10dif_common crct10dif_generic crc-t10dif t10-pi sd_mod cdrom sr_mod
virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk"

HOST_TOOLS="syslinux:syslinux syslinux-common:/usr/lib/syslinux/mbr/mbr.bin mtools:mcopy
dosfstools:mkfs.fat fdisk:sfdisk cpio:cpio"

# shellcheck source=lib/host-tools.sh
source "$ROOT/scripts/lib/host-tools.sh"

log() {
	echo "build-guest: $*" >&2
}

# Downloads the i386 kernel and busybox-static .debs into $CACHE/debs unless already there.
# apt-get update may fail on one index (bookworm-security i386 often does); only the packages
# themselves must resolve.
fetch_debs() {
	mkdir -p "$CACHE/debs"
	if compgen -G "$CACHE/debs/linux-image-*.deb" >/dev/null && compgen -G "$CACHE/debs/busybox-static_*.deb" >/dev/null; then
		return
	fi
	if ! dpkg --print-foreign-architectures | grep -qx i386; then
		as_root dpkg --add-architecture i386
	fi
	as_root apt-get update -qq || log "apt-get update reported errors; continuing"
	# linux-image-686 is a metapackage; its dependency names the ABI-numbered kernel package.
	local kernel
	kernel=$(apt-cache depends linux-image-686:i386 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-686\)\(:i386\)\?$/\1/p' | head -n1)
	[ -n "$kernel" ] || { log "cannot resolve linux-image-686:i386"; exit 1; }
	log "downloading $kernel:i386 busybox-static:i386"
	# apt-get download writes into the current directory; a temporary one keeps the cache whole.
	local tmp
	tmp=$(mktemp -d "$CACHE/download.XXXXXX")
	chmod 755 "$tmp"
	(cd "$tmp" && apt-get download -q "$kernel:i386" busybox-static:i386)
	mv "$tmp"/*.deb "$CACHE/debs/"
	rmdir "$tmp"
}

# Unpacks each .deb once into $CACHE/root-<package>.
unpack_debs() {
	local deb dir
	for deb in "$CACHE"/debs/*.deb; do
		dir=$CACHE/root-$(basename "$deb" .deb)
		[ -d "$dir" ] && continue
		dpkg-deb -x "$deb" "$dir.tmp"
		mv "$dir.tmp" "$dir"
	done
	KROOT=$(compgen -G "$CACHE/root-linux-image-*" | head -n1)
	BBROOT=$(compgen -G "$CACHE/root-busybox-static_*" | head -n1)
	VMLINUZ=$(compgen -G "$KROOT/boot/vmlinuz-*" | head -n1)
	KVER=${VMLINUZ##*/vmlinuz-}
}

# Deterministic seed: 32-byte lines numbered 0..N-1, so every sector of it is distinct.
make_seed() {
	seq -f 'blockgraph-seed-%015g' 0 $((SEED_BYTES / 32 - 1))
}

# newc_entry NAME MODE RDEV_MAJOR RDEV_MINOR: one data-less entry of a cpio "newc" archive
# (header of 13 hex fields, NUL-terminated name, padding to 4 bytes). The kernel accepts several
# archives one after another.
newc_entry() {
	local namesize=$((${#1} + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		1 "$2" 0 0 1 0 0 0 0 "$3" "$4" $namesize 0
	printf '%s\0' "$1"
	head -c $(((4 - (110 + namesize) % 4) % 4)) /dev/zero
}

# Writes $WORK/initrd.gz: busybox, /init, /etc/blockgraph.conf and the disk modules.
make_initramfs() {
	local root=$WORK/initramfs m ko
	mkdir -p "$root"/{bin,dev,etc,lib/modules,proc,sys,tmp}
	cp "$BBROOT/bin/busybox" "$root/bin/busybox"
	install -m 755 "$GUEST_SRC/init" "$root/init"
	for m in $MODULES; do
		ko=$(find "$KROOT/lib/modules/$KVER" -name "$m.ko" -print -quit)
		[ -n "$ko" ] || { log "module $m not found in $KVER"; exit 1; }
		cp "$ko" "$root/lib/modules/"
	done
	cat >"$root/etc/blockgraph.conf" <<-EOF
		MODULES="$(echo $MODULES)"
		SEED_BYTES=$SEED_BYTES
		SEED_SHA256=$SEED_SHA256
		CTL_OFFSET=$CTL_OFFSET
		CTL_MAGIC=$CTL_MAGIC
		COUNTER_OFFSET=$COUNTER_OFFSET
		IOERROR_OFFSET=$IOERROR_OFFSET
		PATTERN_OFFSET=$PATTERN_OFFSET
		PATTERN_BYTES=$PATTERN_BYTES
		PATTERN_TEXT=$PATTERN_TEXT
		LOOP_OFFSET=$LOOP_OFFSET
		LOOP_COUNT=$LOOP_COUNT
	EOF
	# The kernel opens /dev/console before the init mounts devtmpfs, so the archive needs the node;
	# a hand-made entry for it keeps the build free of mknod (and so of root).
	{
		(cd "$root" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
		newc_entry dev/console $((0x2180)) 5 1 # S_IFCHR | 0600, major 5 minor 1
		newc_entry TRAILER!!! 0 0 0
	} >"$WORK/initrd"
	gzip -9 -n -c "$WORK/initrd" >"$WORK/initrd.gz"
}

# Writes $WORK/p1.img: the FAT16 boot partition with syslinux, kernel and initramfs.
make_boot_partition() {
	local img=$WORK/p1.img
	truncate -s $((P1_SECTORS * 512)) "$img"
	mkfs.fat -F 16 -s 1 -h $P1_START -n BLOCKGRAPH "$img" >/dev/null
	syslinux --install "$img"
	MTOOLS_SKIP_CHECK=1 mcopy -i "$img" "$VMLINUZ" ::vmlinuz
	MTOOLS_SKIP_CHECK=1 mcopy -i "$img" "$WORK/initrd.gz" ::initrd.gz
	MTOOLS_SKIP_CHECK=1 mcopy -i "$img" "$GUEST_SRC/syslinux.cfg" ::syslinux.cfg
}

# Assembles $WORK/guest.raw: MBR boot code, partition table, both partitions.
make_disk() {
	local disk=$WORK/guest.raw
	truncate -s $((DISK_SECTORS * 512)) "$disk"
	sfdisk --quiet "$disk" <<-EOF
		label: dos
		start=$P1_START, size=$P1_SECTORS, type=6, bootable
		start=$P2_START, size=$P2_SECTORS, type=da
	EOF
	dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" bs=440 count=1 conv=notrunc status=none
	dd if="$WORK/p1.img" of="$disk" bs=512 seek=$P1_START conv=notrunc status=none
	make_seed | dd of="$disk" bs=512 seek=$P2_START conv=notrunc status=none
}

write_manifest() {
	cat >"$WORK/guest.json" <<-EOF
		{
		  "kernel": "$KVER",
		  "bytes": $((DISK_SECTORS * 512)),
		  "partitions": [
		    { "offset": $((P1_START * 512)), "bytes": $((P1_SECTORS * 512)), "type": "fat16" },
		    { "offset": $((P2_START * 512)), "bytes": $((P2_SECTORS * 512)), "type": "raw" }
		  ],
		  "seed": { "offset": $((P2_START * 512)), "bytes": $SEED_BYTES, "sha256": "$SEED_SHA256" },
		  "control": { "offset": $((P2_START * 512 + CTL_OFFSET)), "bytes": 512, "magic": "$CTL_MAGIC" },
		  "counter": { "offset": $((P2_START * 512 + COUNTER_OFFSET)), "bytes": 4 },
		  "ioerror": { "offset": $((P2_START * 512 + IOERROR_OFFSET)), "bytes": 4096 },
		  "pattern": { "offset": $((P2_START * 512 + PATTERN_OFFSET)), "bytes": $PATTERN_BYTES, "line": "$PATTERN_TEXT" }
		}
	EOF
}

main() {
	ensure_host_tools "$HOST_TOOLS"
	fetch_debs
	unpack_debs
	local stamp
	stamp=$({
		cat "$0" "$GUEST_SRC"/*
		ls "$CACHE/debs"
	} | sha256sum | cut -d' ' -f1)
	if [ -f "$OUT/guest.raw" ] && [ "$(cat "$OUT/guest.stamp" 2>/dev/null)" = "$stamp" ]; then
		log "guest/out/guest.raw is up to date"
		return
	fi
	SEED_SHA256=$(make_seed | sha256sum | cut -d' ' -f1)
	WORK=$(mktemp -d)
	trap 'rm -rf "$WORK"' EXIT
	make_initramfs
	make_boot_partition
	make_disk
	write_manifest
	mkdir -p "$OUT"
	mv "$WORK/guest.raw" "$WORK/guest.json" "$OUT/"
	echo "$stamp" >"$OUT/guest.stamp"
	log "built guest/out/guest.raw ($KVER, $((DISK_SECTORS * 512 / 1048576)) MiB)"
}

main "$@"
