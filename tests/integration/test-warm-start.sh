#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Warm start: VMs restored from templates and user snapshots, with real
# vmgrd, libvirtd and QEMU (TCG) booting the default guest in this test's
# namespaces (in both network modes: NAME and NAME@namespace).
#   - the first VM of a shape (g1/a, with an IPv4 NIC) boots cold and
#     becomes the shape's template; four more of that shape in two groups
#     (g1/b, g1/c, g2/d, g2/e) are its clones: their Timings show
#     `restored` and `identity_applied`; each has its own hostname, MACs,
#     derived IPv6 and leased IPv4 in the guest and answers on them from
#     the host; each reads other bytes from /dev/urandom than the others
#     and the template's VM; each has the host's clock within 1 s; clones
#     reach each other over IPv6 and IPv4, within a group and across the
#     two that share a template; `vmgrctl snapshot list` shows one template;
#     the template's VM and the clones run without transparent huge pages
#     under TCG (with them under KVM);
#   - a user snapshot (`vmgrctl snapshot create`) of a VM that wrote bytes
#     to its disk and runs a process holding a random value in its memory:
#     a VM with `from_snapshot` in another group reads those bytes from its
#     own disk (page cache dropped) and runs that process with that value;
#     the disks are copies, not shared;
#   - deleting the template and the user snapshot while their clones run
#     leaves the clones working (exec, disk writes); a clone restarted
#     after its template is gone becomes ready again;
#   - a changed guest image (same initrd path, other content) is a new
#     shape: 8 VMs asking for it at once make one new template, built by
#     one VM, the other 7 restored from it, all of them running the new
#     image; the template of the old content is not used.
# Prints the times to ready, cold and warm.

# shellcheck disable=SC2016 # guest scripts in single quotes expand in the guest
# shellcheck disable=SC2154 # exp and exp_to are filled by vmgr_load_expected

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_vm_test_begin "$@"

timings=()

ctl() {
        vmgrctl_as_user "$@"
}

# gx GROUP VM CMD...: run CMD in the guest through vmgrctl exec (stdin empty).
gx() {
        local g=$1 v=$2
        shift 2
        ctl exec "$g" "$v" -- "$@" </dev/null
}

# Timings of the VM at path $1 as "stage usec" lines, in the daemon's order.
vm_timings() {
        busctl_as_user --json=short get-property org.vmgr1 "$1" org.vmgr1.VM Timings |
                python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; [print(k, v) for k, v in d.items()]'
}

# The stages of VM $2 of group $1, on one line.
vm_stages() {
        local p
        p=$(vmgr_vm_path "$1" "$2") || return 1
        vm_timings "$p" | awk '{print $1}' | xargs
}

# The time to ready of VM $2 of group $1 in ms (its Timings' ready stage).
vm_ready_ms() {
        local p
        p=$(vmgr_vm_path "$1" "$2") || return 1
        vm_timings "$p" | awk '$1 == "ready" { printf "%d", $2 / 1000 }'
}

# wait_ready GROUP SECONDS: vmgrctl wait for every VM of the group.
wait_ready() {
        ctl wait "$1" --timeout "$2"
}

# --- the snapshot store, as vmgrctl shows it -----------------------------------

# Manager.ListSnapshots as "KIND NAME LAST_USED_USEC SOURCE" lines (KIND:
# template or user); a failed list is a failed read (vmgr_read_failed), so
# that "not listed" cannot pass on it.
snap_list() {
        local out
        if ! out=$(busctl_as_user --json=short call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListSnapshots 2>&1); then
                vmgr_read_failed "Manager.ListSnapshots failed: $out"
                return 1
        fi
        python3 -c '
import json, sys
for name, kind, shape, size, created, used, source in json.load(sys.stdin)["data"][0]:
    print(kind, name, used, source or "-")' <<<"$out"
}

# Names of the templates, one a line, sorted.
templates() {
        snap_list | awk '$1 == "template" { print $2 }' | sort
}

# True once there are $1 templates.
templates_are() {
        [ "$(templates | wc -l)" -eq "$1" ]
}

# When template $1 was last used (µs since the epoch), as listed.
template_used() {
        snap_list | awk -v n="$1" '$1 == "template" && $2 == n { print $3 }'
}

# True if template $1 is listed.
template_listed() {
        templates | grep -q -x "$1"
}

# True if user snapshot $1 is listed.
user_snapshot_listed() {
        snap_list | awk -v n="$1" '$1 == "user" && $2 == n { f = 1 } END { exit !f }'
}

# --- what a guest says about itself ---------------------------------------------

# probe GROUP VM: one exec that prints, in this order: 32 bytes of
# /dev/urandom (hex, the first thing the guest does), its hostname, the MACs
# of enp1s0 and (if there) enp2s0, its IPv6 and IPv4 addresses on them, and
# its CLOCK_REALTIME (busybox's date has no %N; adjtimex prints the
# microseconds); then, from the host, the time before and after the exec.
# Writes $VMGR_TMP/probe-GROUP-VM, "key value" lines.
probe() {
        local g=$1 v=$2 before after out
        before=$(date +%s.%N)
        out=$(gx "$g" "$v" sh -c '
                echo "urandom $(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")"
                echo "hostname $(hostname)"
                for n in enp1s0 enp2s0; do
                        [ -e /sys/class/net/$n ] || continue
                        echo "mac.$n $(cat /sys/class/net/$n/address)"
                        echo "addrs.$n $(ip -o addr show dev $n scope global | awk "{print \$4}" | xargs)"
                done
                adjtimex | awk "/tv_sec/ {s = \$2} /tv_usec/ {u = \$2} END {printf \"clock %d.%06d\n\", s, u}"
        ' 2>&1) || out+=$'\n'"exec-failed $?"
        after=$(date +%s.%N)
        {
                echo "$out"
                echo "host.before $before"
                echo "host.after $after"
        } >"$VMGR_TMP/probe-$g-$v"
}

# probed GROUP VM KEY: a value probe wrote.
probed() {
        awk -v k="$3" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$VMGR_TMP/probe-$1-$2"
}

# clock_ok GROUP VM: the guest's clock was within 1 s of the host's while
# the exec ran (between the host's readings before and after it).
clock_ok() {
        awk -v g="$(probed "$1" "$2" clock)" -v b="$(probed "$1" "$2" host.before)" \
                -v a="$(probed "$1" "$2" host.after)" 'BEGIN { exit !(g != "" && g >= b - 1 && g <= a + 1) }'
}

# ping_from_host VM ADDRESS MAC TAP: VM answers ping on ADDRESS from where
# the groups live. If not, the details say which bridge port the bridge
# sends MAC to (it must be the VM's TAP) and the host's neighbour entry:
# a clone whose restored NIC still has the template's MAC and announces it
# takes the template VM's traffic.
ping_from_host() {
        local v=$1 addr=$2 mac=$3 tap=$4 out fam=-6
        [[ $addr == *:* ]] || fam=-4
        if out=$(vmgr_netns_exec ping "$fam" -n -q -c 1 -w 10 "$addr" 2>&1); then
                vmgr_ok "$v: answers ping on $addr from the host"
                return 0
        fi
        vmgr_not_ok "$v: answers ping on $addr from the host" "$out" \
                "bridge fdb for $mac (its TAP is $tap): $(vmgr_netns_exec bridge fdb show 2>&1 | grep -i -F "$mac" | xargs)" \
                "neighbour: $(vmgr_netns_exec ip neigh show to "$addr" 2>&1 | xargs)"
}

# ===================================================================================
# 1. One template, four clones in two groups
# ===================================================================================

t0=$(vmgr_now_ms)
check "g1: the first VM of its shape (a, IPv4) boots cold" \
        ctl group create g1 -q --vm a:ipv4
check "g1/a is ready" wait_ready g1 120
timings+=("cold: CreateGroup g1 (a) to ready: $(($(vmgr_now_ms) - t0)) ms; a's Timings ready at $(vm_ready_ms g1 a) ms")
stages=$(vm_stages g1 a) || true
check_match "a booted cold: its Timings have neither restored nor identity_applied ($stages)" \
        '^qemu_started .*ready$' "$(grep -v -w -e restored -e identity_applied <<<"$stages" || true)"

t0=$(vmgr_now_ms)
check "a's template appears in the store" vmgr_wait_until 60 templates_are 1
timings+=("a ready to its template listed: $(($(vmgr_now_ms) - t0)) ms")
template_a=$(templates || true)
check_match "the template is named by a 64-hex-digit shape hash" '^[0-9a-f]{64}$' "$template_a"
check_eq "a is still ready after its template was saved" ready "$(vmgr_vm_prop "$(vmgr_vm_path g1 a)" State)"

# b and c join g1, d and e come in a group of their own; all four have a's shape.
t0=$(vmgr_now_ms)
check "vm add g1 b:ipv4" ctl vm add g1 -q b:ipv4
check "vm add g1 c:ipv4" ctl vm add g1 -q c:ipv4
check "g2 with d and e (IPv4)" ctl group create g2 -q --vm d:ipv4 --vm e:ipv4
check "g1 is ready" wait_ready g1 90
check "g2 is ready" wait_ready g2 90
timings+=("warm: b, c added, g2 (d, e) created, all ready: $(($(vmgr_now_ms) - t0)) ms")
clones=(g1:b g1:c g2:d g2:e)
for gv in "${clones[@]}"; do
        g=${gv%%:*} v=${gv#*:}
        stages=$(vm_stages "$g" "$v") || true
        check_match "$v is a clone: Timings show restored, then identity_applied ($stages)" \
                '(^| )restored .*identity_applied .*ready$' "$stages"
        timings+=("warm: $v ready at $(vm_ready_ms "$g" "$v") ms ($(vm_timings "$(vmgr_vm_path "$g" "$v")" | xargs))")
done
check_eq "still one template: the clones made none" "$template_a" "$(templates || true)"

# Under TCG every QEMU runs without transparent huge pages (vmgrd starts
# libvirtd so): a restore writes the template's pages all over the clone's
# RAM and a boot touches it all over, and each first touch would allocate
# and clear a whole 2 MiB page. Under KVM the kernel's default stays.
# qemu_thp GROUP VM: "ACCEL THP_enabled" of the VM's QEMU.
qemu_thp() {
        local pid cmdline accel=kvm
        pid=$(vmgr_qemu_pids "$1" "$2" | sed -n 1p)
        [ -n "$pid" ] || return 1
        # Read whole, not piped into grep -q: its early exit would be a
        # SIGPIPE for tr, and under pipefail "not TCG".
        cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
        [[ $cmdline == *" -accel tcg "* ]] && accel=tcg
        echo "$accel $(awk '$1 == "THP_enabled:" { print $2 }' "/proc/$pid/status")"
}
for gv in g1:a "${clones[@]}"; do
        thp=$(qemu_thp "${gv%%:*}" "${gv#*:}") || thp="no QEMU found"
        case $thp in
        tcg*) check_eq "${gv#*:} (TCG): its QEMU runs without transparent huge pages" "tcg 0" "$thp" ;;
        *) check_eq "${gv#*:} (KVM): its QEMU keeps the kernel's transparent huge pages" "kvm 1" "$thp" ;;
        esac
done
# What a user sees: vmgrctl names a template "template:SHAPE".
ctl_templates() {
        ctl snapshot list --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Kind"] == "template":
        print(s["Name"])'
}
check_eq "vmgrctl snapshot list shows exactly that template" "template:$template_a" "$(ctl_templates 2>&1)"

# A restored NIC starts with the template's MAC, and QEMU announces it
# after an incoming migration: the bridge must still send a's MACs to a's
# own TAPs (or flood them, having forgotten), not to a clone's. Read before
# anything makes a send (the probes below).
vmgr_load_expected exp_a g1 a
for nic in "${exp_a[mac]} ${exp_a[tap]}" "${exp_a[mac4]} ${exp_a[tap4]}"; do
        read -r mac tap <<<"$nic"
        port=$(vmgr_netns_exec bridge fdb show br "${exp_a[bridge]}" 2>&1 | awk -v m="$mac" '$1 == m { print $3 }' | xargs)
        check_match "after its clones started, the bridge sends a's MAC $mac to a's TAP $tap" "^($tap)?$" "$port"
done

# Each VM, the template's own first: what it says about itself.
all=(g1:a "${clones[@]}")
for gv in "${all[@]}"; do
        probe "${gv%%:*}" "${gv#*:}"
done
declare -A seen_random=() seen_v4=()
for gv in "${all[@]}"; do
        g=${gv%%:*} v=${gv#*:}
        f=$VMGR_TMP/probe-$g-$v
        if grep -q '^exec-failed' "$f"; then
                vmgr_not_ok "$v: exec works" "$(cat "$f")"
                continue
        fi
        vmgr_load_expected exp "$g" "$v"
        p=$(vmgr_vm_path "$g" "$v") || true
        check_eq "$v: its own hostname in the guest" "$v" "$(probed "$g" "$v" hostname)"
        check_eq "$v: its own MAC on enp1s0" "${exp[mac]}" "$(probed "$g" "$v" mac.enp1s0)"
        check_eq "$v: its own MAC on enp2s0 (IPv4 NIC)" "${exp[mac4]}" "$(probed "$g" "$v" mac.enp2s0)"
        check_match "$v: its derived IPv6 ${exp[ipv6]} on enp1s0" "(^| )${exp[ipv6]}/64( |$)" \
                "$(probed "$g" "$v" addrs.enp1s0)"
        check_eq "$v: only its own global address on enp1s0 (none of the template's)" "${exp[ipv6]}/64" \
                "$(probed "$g" "$v" addrs.enp1s0)"
        v4=$(vmgr_vm_prop "$p" IPv4) || true
        check_match "$v: vmgrd knows its IPv4 address ($v4)" '^10\.[0-9]+\.[0-9]+\.[0-9]+$' "$v4"
        check_eq "$v: only its leased IPv4 on enp2s0" "$v4/24" "$(probed "$g" "$v" addrs.enp2s0)"
        ping_from_host "$v" "${exp[ipv6]}" "${exp[mac]}" "${exp[tap]}"
        ping_from_host "$v" "$v4" "${exp[mac4]}" "${exp[tap4]}"
        if clock_ok "$g" "$v"; then
                vmgr_ok "$v: its clock is within 1 s of the host's"
        else
                vmgr_not_ok "$v: its clock is within 1 s of the host's" "$(grep -e clock -e host "$f")"
        fi
        r=$(probed "$g" "$v" urandom)
        check_match "$v: read 32 bytes from /dev/urandom" '^[0-9a-f]{64}$' "$r"
        if [ -n "${seen_random[$r]:-}" ]; then
                vmgr_not_ok "$v: /dev/urandom gives other bytes than in ${seen_random[$r]}" "both read $r"
        else
                vmgr_ok "$v: /dev/urandom gives other bytes than in every VM before it"
        fi
        seen_random[$r]=$v
        if [ -n "${seen_v4[$v4]:-}" ]; then
                vmgr_not_ok "$v: its IPv4 address is its own" "${seen_v4[$v4]} has $v4 too"
        fi
        seen_v4[$v4]=$v
done

# Traffic between clones: within g1, within g2, both ways over IPv6 and IPv4.
vm_pings() {
        local g=$1 v=$2 to_g=$3 to_v=$4 e6 v4
        vmgr_load_expected exp_to "$to_g" "$to_v"
        e6=${exp_to[ipv6]}
        v4=$(vmgr_vm_prop "$(vmgr_vm_path "$to_g" "$to_v")" IPv4) || true
        check "$v reaches $to_v over IPv6 ($e6)" gx "$g" "$v" ping6 -q -c 1 -w 10 "$e6"
        check "$v reaches $to_v over IPv4 ($v4)" gx "$g" "$v" ping -q -c 1 -w 10 "$v4"
}
vm_pings g1 b g1 c
vm_pings g1 c g1 b
vm_pings g1 b g1 a
vm_pings g2 d g2 e
vm_pings g2 e g2 d

# ===================================================================================
# 2. A user snapshot: bytes on a disk, a process in memory
# ===================================================================================

# s: the default guest with a blank 16 MiB disk (vda: no boot disk); a shape
# of its own, so it boots cold.
check "vm add g1 s with a blank extra disk" ctl vm add g1 -q s --spec - <<<'{"extra_disks": [{"size_mib": 16}]}'
check "g1/s is ready" wait_ready g1 120
marker=vmgr-warm-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
# The default guest cannot make a file system: the bytes go to the raw
# device, and sync puts them through to the disk's overlay on the host.
check "s writes its marker to /dev/vda" gx g1 s sh -c "printf '%s\n' '$marker' | dd of=/dev/vda bs=512 conv=sync 2>/dev/null && sync"
# A process whose value lives only in its memory (and a file in /run it
# rewrites every second).
x=$(gx g1 s sh -c 'x=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d " \n")
        setsid sh -c "while :; do echo $x >/run/marker; sleep 1; done" </dev/null >/dev/null 2>&1 &
        echo $x' 2>&1) || true
check_match "s runs a process holding a random value ($x)" '^[0-9a-f]{16}$' "$x"

t0=$(vmgr_now_ms)
check "vmgrctl snapshot create g1 s snap1" ctl snapshot create g1 s snap1
timings+=("snapshot create of s: $(($(vmgr_now_ms) - t0)) ms")
check "snap1 is listed as a user snapshot" user_snapshot_listed snap1
# A snapshot holds the guest's memory (keys, data): nobody but its user
# may read it, nor change what a later clone will run.
store=$VMGR_TMP/home/.cache/vmgr/snapshots
check "the store has snap1's state" test -s "$store/user/snap1/state"
check_empty "nothing in the store is open to other users (group or other bits)" \
        "$(find "$store" ! -type l -perm /077 -printf '%m %u %p\n' 2>&1; find "$store" ! -user "$VMGR_USER" -printf '%u %p\n' 2>&1)"
check_eq "s is ready after the snapshot, as itself" "ready|s" \
        "$(vmgr_vm_prop "$(vmgr_vm_path g1 s)" State)|$(gx g1 s hostname 2>&1)"

# f, in g2, from snap1: no other keys.
t0=$(vmgr_now_ms)
check "vm add g2 f from snap1" ctl vm add g2 -q f --spec - <<<'{"from_snapshot": "snap1"}'
check "g2/f is ready" wait_ready g2 90
timings+=("warm: f from snap1 added to ready: $(($(vmgr_now_ms) - t0)) ms")
stages=$(vm_stages g2 f) || true
check_match "f is restored: Timings show restored and identity_applied ($stages)" \
        '(^| )restored .*identity_applied .*ready$' "$stages"
check_eq "f has its own hostname" f "$(gx g2 f hostname 2>&1)"
vmgr_load_expected exp g2 f
check_eq "f has its own MAC" "${exp[mac]}" "$(gx g2 f cat /sys/class/net/enp1s0/address 2>&1)"
ping_from_host f "${exp[ipv6]}" "${exp[mac]}" "${exp[tap]}"
# The page cache came with the memory: drop it, so the bytes come from f's disk.
check_eq "f reads s's marker from its own disk (page cache dropped)" "$marker" \
        "$(gx g2 f sh -c 'sync; echo 3 >/proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 count=1 2>/dev/null | head -n 1' 2>&1)"
# The process: /run/marker, removed, is written again by it, with x.
marker_back() {
        [ "$(gx g2 f cat /run/marker 2>/dev/null)" = "$x" ]
}
check "f runs s's process (/run/marker removed)" gx g2 f rm -f /run/marker
check "f's copy of s's process writes the value it held in memory again" vmgr_wait_until 10 marker_back
check "f and s have disks of their own: f overwrites its marker" \
        gx g2 f sh -c "printf 'f-was-here\n' | dd of=/dev/vda bs=512 conv=sync 2>/dev/null && sync"
check_eq "s still reads its own marker" "$marker" \
        "$(gx g1 s sh -c 'sync; echo 3 >/proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 count=1 2>/dev/null | head -n 1' 2>&1)"

# ===================================================================================
# 3. Snapshots deleted while their clones run
# ===================================================================================

check "vmgrctl snapshot delete snap1 while f runs" ctl snapshot delete snap1
check_fails "snap1 is no longer listed" user_snapshot_listed snap1
check "vmgrctl snapshot delete the template while b-e run" ctl snapshot delete "template:$template_a"
check_fails "the template is no longer listed" template_listed "$template_a"
check_eq "f still runs commands" "alive" "$(gx g2 f echo alive 2>&1)"
check_eq "f writes to its disk and reads it back (page cache dropped)" "after-delete" \
        "$(gx g2 f sh -c "printf 'after-delete\n' | dd of=/dev/vda bs=512 seek=8 conv=sync 2>/dev/null && sync &&
                echo 3 >/proc/sys/vm/drop_caches && dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -n 1" 2>&1)"
check "f's process still runs" vmgr_wait_until 5 marker_back
for gv in g1:b g2:d; do
        check_eq "${gv#*:} still runs commands" "${gv#*:}" "$(gx "${gv%%:*}" "${gv#*:}" hostname 2>&1)"
done
vmgr_load_expected exp g1 c
check "b still reaches c" gx g1 b ping6 -q -c 1 -w 10 "${exp[ipv6]}"
t0=$(vmgr_now_ms)
check "b restarts after its template was deleted" ctl vm restart g1 b
check "b is ready again" wait_ready g1 120
timings+=("b restarted without its template, to ready: $(($(vmgr_now_ms) - t0)) ms ($(vm_stages g1 b))")
check_eq "b is itself after the restart" b "$(gx g1 b hostname 2>&1)"

# a's kernel, initramfs and command line (without its hostname), for part 4.
mapfile -d '' -t qemu_argv <"/proc/$(vmgr_qemu_pids g1 a | head -n 1)/cmdline" || true
kernel='' initrd='' cmdline=''
for ((i = 0; i < ${#qemu_argv[@]} - 1; i++)); do
        case ${qemu_argv[i]} in
        -kernel) kernel=${qemu_argv[i + 1]} ;;
        -initrd) initrd=${qemu_argv[i + 1]} ;;
        -append) cmdline=$(sed -E 's/(^| )vmgr\.hostname=[^ ]*//' <<<"${qemu_argv[i + 1]}") ;;
        esac
done
check_match "a's QEMU boots the default guest's kernel and initramfs ($kernel $initrd: $cmdline)" \
        '^/.*/vmlinu[xz]-[^ ]+ /.*\.cpio(\.gz)?: console=' "$kernel $initrd: $cmdline"

# The VMs of parts 1-3 make way for part 4's eight.
check "delete g1" ctl group delete g1
check "delete g2" ctl group delete g2

# ===================================================================================
# 4. A changed image is a new shape; eight VMs asking for it at once
# ===================================================================================

# The default guest from explicit paths: its kernel, a copy of its
# initramfs (with the agent), its command line without the per-VM hostname
# (which would make every VM a shape of its own), as a's QEMU had them.
img=$VMGR_TMP/img
mkdir -m 0755 "$img"
cp "$initrd" "$img/initrd.img"
chmod 0644 "$img/initrd.img"
kspec="{\"kernel\": \"$kernel\", \"initrd\": \"$img/initrd.img\", \"cmdline\": \"$cmdline\", \"agent\": true}"
before=$(templates || true)
check "g4: k boots the initramfs copy (v1)" ctl group create g4 -q --spec - <<<"{\"vms\": [{\"name\": \"k\", ${kspec#\{}]}"
check "g4/k is ready" wait_ready g4 120
check "k's template appears" vmgr_wait_until 60 templates_are $(($(wc -w <<<"$before") + 1))
template_v1=$(comm -13 <(echo "$before") <(templates || true) | head -n 1)
check_eq "k has no marker file (v1)" "none" "$(gx g4 k sh -c 'cat /etc/vmgr-warm-marker 2>/dev/null || echo none' 2>&1)"
check "delete g4" ctl group delete g4

# v2: the same path, one more file (a second cpio archive appended: the
# kernel unpacks both).
(
        cd "$(mktemp -d "$VMGR_TMP/extra.XXXXXX")" || exit 1
        mkdir etc
        echo v2 >etc/vmgr-warm-marker
        printf 'etc\netc/vmgr-warm-marker\n' | cpio -o -H newc --quiet | gzip -n
) >"$img/extra.cpio.gz"
cat "$img/initrd.img" "$img/extra.cpio.gz" >"$img/initrd.img.new"
chmod 0644 "$img/initrd.img.new"
mv "$img/initrd.img.new" "$img/initrd.img"

vms=
for i in 1 2 3 4 5 6 7 8; do
        vms+="${vms:+, }{\"name\": \"m$i\", ${kspec#\{}"
done
before=$(templates || true)
v1_used=$(template_used "$template_v1" || true)
check_match "v1's template is listed, with when it was last used" '^[0-9]+$' "$v1_used"
log_lines=$(wc -l <"$VMGR_TMP/vmgrd.log")
t0=$(vmgr_now_ms)
check "g5: 8 VMs of the changed image at once" ctl group create g5 -q --spec - <<<"{\"vms\": [$vms]}"
check "g5 is ready" wait_ready g5 240
timings+=("8 VMs of a new shape at once, to all ready: $(($(vmgr_now_ms) - t0)) ms")
check "one new template appears" vmgr_wait_until 60 templates_are $(($(wc -w <<<"$before") + 1))
new=$(comm -13 <(echo "$before") <(templates || true))
check_eq "exactly one new template" 1 "$(wc -w <<<"$new")"
check_fails "the new template is not v1's (the content changed, so did the shape)" test "$new" = "$template_v1"
check_eq "v1's template was not used by the 8 VMs" "$v1_used" "$(template_used "$template_v1" || true)"
cold=0 warm=0 v2=0
for i in 1 2 3 4 5 6 7 8; do
        stages=$(vm_stages g5 "m$i") || true
        if [[ $stages == *" restored "* ]] && [[ $stages == *identity_applied* ]]; then
                warm=$((warm + 1))
        else
                cold=$((cold + 1))
        fi
        [ "$(gx g5 "m$i" cat /etc/vmgr-warm-marker 2>&1)" = v2 ] && v2=$((v2 + 1))
        timings+=("m$i: $(vm_timings "$(vmgr_vm_path g5 "m$i")" | xargs)")
done
check_eq "one VM built the template, 7 were restored from it" "cold 1 warm 7" "cold $cold warm $warm"
check_eq "all 8 run the changed image (v2 marker)" 8 "$v2"
# vmgrd says which VM boots cold to build a template, and when it saved
# one: for this shape, once each.
log_new=$(tail -n +"$((log_lines + 1))" "$VMGR_TMP/vmgrd.log")
check_eq "vmgrd's log: one VM booted cold to build the template" 1 \
        "$(grep -c "No template of this VM's shape yet" <<<"$log_new" || true)"
check_eq "vmgrd's log: the new template was saved once" 1 \
        "$(grep -c -F "Saved as the template of shape $new" <<<"$log_new" || true)"
check "delete g5" ctl group delete g5

check_empty "nothing left of g1, g2, g4, g5" "$(vmgr_group_leftovers g1 a b c s; vmgr_group_leftovers g2 d e f
        vmgr_group_leftovers g4 k; vmgr_group_leftovers g5 m1 m2 m3 m4 m5 m6 m7 m8)"

printf '# %s\n' "${timings[@]}"
vmgr_finish
