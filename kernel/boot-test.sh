#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Boot test of the kernel port:
#   1. install Debian's linux-headers-amd64, linux-image-amd64,
#      qemu-system-x86, busybox-static and cpio when missing;
#   2. build libtdp.ko and tdp_selftest.ko against the installed headers
#      (a clean build; any compiler or modpost warning fails the test);
#   3. pack them into a busybox initramfs whose /init loads both,
#      unloads them and powers off;
#   4. boot the Debian kernel under qemu (KVM when /dev/kvm works,
#      software emulation otherwise) with the serial console in a file;
#   5. pass only if the self-test printed "N passed, 0 failed".
#
# Every step is bounded in time.  The last line names the serial log.
#
# Usage: bash kernel/boot-test.sh [--ci] [--build-only] [--tcg]
#   --ci          as CI runs it: when qemu cannot start on this machine,
#                 stop after the build (which must pass) instead of failing
#   --build-only  install and build, do not boot
#   --tcg         use software emulation even when KVM works
# Environment:
#   TDP_SELFTEST_ARGS  module parameters of tdp_selftest.ko, for example
#                      "stress_ms=10000 seed=42 filter=mirror/"
#   TDP_BOOT_TIMEOUT   seconds the VM may run (default 180 with KVM,
#                      600 without)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$here/build-boot
log=$out/serial.log
ci=0
build_only=0
force_tcg=0
begin=$SECONDS

for arg in "$@"; do
	case $arg in
	--ci) ci=1 ;;
	--build-only) build_only=1 ;;
	--tcg) force_tcg=1 ;;
	*)
		echo "usage: $0 [--ci] [--build-only] [--tcg]" >&2
		exit 2
		;;
	esac
done

booted=0
say() { echo "boot-test: $*"; }
fail() {
	say "FAILED: $*" >&2
	[ "$booted" -eq 1 ] && [ -f "$log" ] && say "serial log: $log"
	exit 1
}

# ---- 1. packages --------------------------------------------------------

packages=(linux-headers-amd64 linux-image-amd64 qemu-system-x86
	busybox-static cpio make gcc)

start=$SECONDS
bash "$here/../scripts/deps.sh" "${packages[@]}" ||
	fail "could not install ${packages[*]}"
[ $((SECONDS - start)) -gt 2 ] && say "packages ready in $((SECONDS - start))s"

# The newest kernel with both headers and an image installed.
version=
for dir in $(printf '%s\n' /usr/src/linux-headers-*-amd64 | sort -V -r); do
	v=${dir#/usr/src/linux-headers-}
	if [ -e "/boot/vmlinuz-$v" ]; then
		version=$v
		break
	fi
done
[ -n "$version" ] || fail "no kernel with both linux-headers and linux-image"
kdir=/usr/src/linux-headers-$version

# ---- 2. build -------------------------------------------------------------

mkdir -p "$out"
say "building against $kdir"
start=$SECONDS
make -s -C "$here" clean >/dev/null 2>&1
if ! timeout 900 make -C "$here" KDIR="$kdir" >"$out/build.log" 2>&1; then
	cat "$out/build.log" >&2
	fail "the modules did not build (log: $out/build.log)"
fi
# The kernel's own flags, no warning allowed (a mismatch between this gcc
# and the kernel's is the machine's business, not the port's).
if grep -i 'warning' "$out/build.log" |
	grep -v 'the compiler differs from the one used to build the kernel' |
	grep -q .; then
	grep -i -B2 -A4 'warning' "$out/build.log" >&2
	fail "the build printed warnings (log: $out/build.log)"
fi
for ko in libtdp.ko tdp_selftest.ko; do
	[ -f "$here/build/$ko" ] || fail "$ko was not built"
done
say "built libtdp.ko and tdp_selftest.ko in $((SECONDS - start))s, no warnings"
[ "$build_only" -eq 1 ] && exit 0

# ---- 3. initramfs ------------------------------------------------------------

rootfs=$out/initramfs
rm -rf "$rootfs"
mkdir -p "$rootfs/bin" "$rootfs/dev" "$rootfs/proc" "$rootfs/sys"
cp /bin/busybox "$rootfs/bin/busybox" || fail "no /bin/busybox"
cp "$here/build/libtdp.ko" "$here/build/tdp_selftest.ko" "$rootfs/"
# The kernel opens /dev/console for /init before devtmpfs is mounted.
mknod -m 600 "$rootfs/dev/console" c 5 1 2>/dev/null
cat >"$rootfs/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "tdp-boot: kernel \$(uname -r), \$(nproc) CPUs"
insmod /libtdp.ko || echo "tdp-boot: insmod libtdp.ko failed"
insmod /tdp_selftest.ko ${TDP_SELFTEST_ARGS:-} ||
	echo "tdp-boot: insmod tdp_selftest.ko failed"
rmmod tdp_selftest && rmmod libtdp || echo "tdp-boot: unloading failed"
echo "tdp-boot: done"
poweroff -f
EOF
chmod +x "$rootfs/init"
(cd "$rootfs" && find . | cpio -o -H newc --quiet | gzip -1) \
	>"$out/initramfs.cpio.gz" || fail "cannot pack the initramfs"

# ---- 4. boot ----------------------------------------------------------------------

qemu="qemu-system-x86_64"
# Start a paused VM with one vCPU of the given accelerator and model and
# quit: this creates and resets the vCPU, which is where a nested KVM
# that cannot take the host's CPU model fails.
probe() {
	(echo quit | timeout 30 "$qemu" -accel "$1" -cpu "$2" -M pc -m 64M \
		-display none -nodefaults -no-user-config -S -monitor stdio) \
		>/dev/null 2>&1
}

# boot SECONDS ACCEL CPU: run the VM until it powers off, at most SECONDS.
# With KVM, give up (status 99) when the kernel printed nothing within
# $kvm_grace seconds: some nested hypervisors run firmware but hang
# when the guest enters long mode.
kvm_grace=10
boot() {
	local limit=$1 accel=$2 cpu=$3 pid waited=0
	rm -f "$log"
	timeout -k 10 "$limit" "$qemu" -accel "$accel" -cpu "$cpu" \
		-m 512M -smp 2 -nodefaults -no-user-config -display none \
		-monitor none -serial "file:$log" -no-reboot \
		-kernel "/boot/vmlinuz-$version" \
		-initrd "$out/initramfs.cpio.gz" \
		-append "console=ttyS0 earlyprintk=serial,ttyS0,115200 loglevel=7 panic=-1 oops=panic rdinit=/init" \
		2>>"$out/qemu.log" &
	pid=$!
	if [ "$accel" = kvm ]; then
		while kill -0 "$pid" 2>/dev/null &&
			! grep -aq 'Linux version' "$log" 2>/dev/null; do
			if [ "$waited" -ge "$kvm_grace" ]; then
				kill "$pid" 2>/dev/null
				wait "$pid" 2>/dev/null
				return 99
			fi
			sleep 1
			waited=$((waited + 1))
		done
	fi
	wait "$pid"
}

# KVM with the host's CPU model; under some nested hypervisors KVM cannot
# set IA32_ARCH_CAPABILITIES for a guest, so try without it; otherwise,
# or when the kernel does not start under KVM, software emulation.
kvm_cpu=
if [ "$force_tcg" -eq 0 ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	for cpu in host host,-arch-capabilities; do
		if probe kvm "$cpu"; then
			kvm_cpu=$cpu
			break
		fi
	done
fi
if ! probe tcg max && [ -z "$kvm_cpu" ]; then
	if [ "$ci" -eq 1 ]; then
		say "qemu cannot start here: boot test skipped, build passed"
		exit 0
	fi
	fail "qemu cannot start"
fi

rc=99
start=$SECONDS
booted=1
rm -f "$out/qemu.log"
if [ -n "$kvm_cpu" ]; then
	limit=${TDP_BOOT_TIMEOUT:-180}
	say "booting $version with KVM (-cpu $kvm_cpu), at most ${limit}s"
	boot "$limit" kvm "$kvm_cpu"
	rc=$?
	[ "$rc" -eq 99 ] &&
		say "the kernel printed nothing within ${kvm_grace}s under KVM"
fi
if [ "$rc" -eq 99 ]; then
	limit=${TDP_BOOT_TIMEOUT:-600}
	say "booting $version with software emulation (TCG), at most ${limit}s"
	start=$SECONDS
	boot "$limit" tcg max
	rc=$?
fi
say "the VM ran for $((SECONDS - start))s"
[ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && fail "the VM did not finish within ${limit}s"
[ "$rc" -eq 0 ] || fail "qemu exited with status $rc (messages: $out/qemu.log)"

# ---- 5. result -----------------------------------------------------------------

[ -f "$log" ] || fail "no serial log"
grep -a -E 'tdp_selftest: (ok|FAIL) ' "$log" | sed 's/^\[[^]]*\] //'
summary=$(grep -a -o -E 'tdp_selftest: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
[ -n "$summary" ] || fail "the self-test printed no result"
grep -aq 'tdp-boot: unloading failed' "$log" &&
	fail "the modules could not be unloaded after the self-test"
say "${summary#tdp_selftest: } (total $((SECONDS - begin))s)"
say "serial log: $log"
case $summary in
*" 0 failed") exit 0 ;;
*) exit 1 ;;
esac
