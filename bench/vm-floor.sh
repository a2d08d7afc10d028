#!/bin/sh
# The VM boot floor: a bare QEMU microvm booting the bulkhead guest kernel with a minimal busybox
# initramfs whose /init immediately resets the VM (reboot=t + -no-reboot => QEMU exits). Everything the
# real VM path adds (agent, disks, rootfs, container) comes on top of this number.
#
# Usage: bench/vm-floor.sh [vmlinux] [runs]      (defaults: the cached kernel, 5 runs)
# Env:   ACCEL=tcg|kvm (default tcg)  APPEND_EXTRA="..." to try cmdline tweaks  MEM=256M  SMP=1
#        FLOOR_DIR=dir: build the floor's files in dir, check one boot, print the QEMU command and stop
#        (bench/vm.sh uses this to time the floor interleaved with bulkhead)
# Prints one markdown table row: | floor | accel | median | min | max | runs |
set -eu

cache=${BULKHEAD_CACHE:-/var/cache/bulkhead}
vmlinux=${1:-}
if [ -z "$vmlinux" ]; then
    # The newest cached kernel (kernel/<key>/vmlinux), as `bulkhead kernel info` reports it.
    vmlinux=$(ls -t "$cache"/kernel/*/vmlinux 2>/dev/null | head -n 1)
fi
[ -n "$vmlinux" ] && [ -f "$vmlinux" ] || { echo "no vmlinux (build it: bulkhead kernel build)" >&2; exit 1; }
runs=${2:-5}
accel=${ACCEL:-tcg}
for tool in qemu-system-x86_64 hyperfine /bin/busybox gcc; do
    command -v "$tool" >/dev/null || { echo "missing $tool (qemu-system-x86, hyperfine, busybox-static, gcc)" >&2; exit 1; }
done

if [ -n "${FLOOR_DIR:-}" ]; then
    work=$FLOOR_DIR
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/root/bin" "$work/root/dev"
cp /bin/busybox "$work/root/bin/busybox"
mknod "$work/root/dev/console" c 5 1
printf '#!/bin/busybox sh\n/bin/busybox reboot -f\n' > "$work/root/init"
chmod 755 "$work/root/init"
(cd "$work/root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) > "$work/initramfs.cpio"

# Same machine and kernel cmdline as crates/bulkhead-vm/src/qemu.rs (minus disks and the agent port).
append="console=ttyS0 quiet reboot=t panic=-1 8250.nr_uarts=1 rdinit=/init rcupdate.rcu_expedited=1"
case "$accel" in
    kvm) accel_args="-accel kvm -cpu host" ;;
    *)
        accel_args="-accel tcg,thread=multi,tb-size=16 -cpu max"
        # The host TSC frequency, measured like src/tsc.rs does (TCG guests read the host's TSC).
        cat > "$work/tsc.c" <<'C'
#include <stdio.h>
#include <time.h>
#include <x86intrin.h>
int main(void) {
    struct timespec a, b, d = {0, 20000000};
    clock_gettime(CLOCK_MONOTONIC, &a); unsigned long long c0 = __rdtsc();
    nanosleep(&d, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b); unsigned long long c1 = __rdtsc();
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    printf("%llu\n", (unsigned long long)((c1 - c0) * 1e6 / ns));
    return 0;
}
C
        gcc -O2 -o "$work/tsc" "$work/tsc.c"
        append="$append no_timer_check tsc_early_khz=$("$work/tsc") tsc=reliable"
        ;;
esac
append="$append ${APPEND_EXTRA:-}"
cmd="qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=on,acpi=off,pcie=off,isa-serial=on \
 -nodefaults -no-user-config -nographic -no-reboot -sandbox on $accel_args -m ${MEM:-256M} -smp ${SMP:-1} \
 -kernel $vmlinux -initrd $work/initramfs.cpio -append '$append' -serial file:$work/console.log"

# One run first: it must actually reach /init and exit, or the timing is meaningless.
sh -c "timeout 60 $cmd" || { echo "boot failed; console:" >&2; cat "$work/console.log" >&2; exit 1; }
if [ -n "${FLOOR_DIR:-}" ]; then
    echo "$cmd"
    exit 0
fi

hyperfine -N --style none --runs "$runs" --export-json "$work/h.json" "$cmd" >/dev/null
python3 - "$work/h.json" "$accel" "$runs" <<'PY'
import json, statistics, sys
times = json.load(open(sys.argv[1]))["results"][0]["times"]
print(f"| floor (bare microvm + busybox init) | {sys.argv[2]} | {statistics.median(times):.3f} s "
      f"| {min(times):.3f} s | {max(times):.3f} s | {sys.argv[3]} |")
PY
