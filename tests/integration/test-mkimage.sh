#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vmgr's Debian image (vmgr-mkimage, docs/guest.md) through vmgrd:
#   - vmgr-mkimage refuses bad input with a message naming what is wrong
#     (distribution, output directory, size, package name, a missing tool,
#     an agent that is not one), without building;
#   - the image with the agent, built once and then taken from the cache
#     (a second call takes less than a second), boots under TCG with BIOS
#     (SeaBIOS, syslinux) and with UEFI (OVMF, systemd-boot) from disk VMs;
#     the VMs become ready (agent, derived IPv6 address),
#     exec works, hostname, persistent journal, systemd-journal-gatewayd
#     answering on port 19531, nothing else listening, no root password,
#     cloud-init off without a seed;
#   - the UEFI VM, with "ipv4": true, gets its DHCPv4 lease on enp2s0.
# Prints the build and boot times.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
source "$(dirname "$0")/lib-image.sh"
vmgr_require_root
vmgr_vm_require_tools
# Before the namespaces: a build needs Debian's archive. The re-executed
# script gets the cached image.
t0=$(vmgr_now_ms)
image=$(vmgr_test_debian_image --agent)
t_image=$(($(vmgr_now_ms) - t0))
vmgr_enter_netns "$@"

MKIMAGE=$VMGR_DESTDIR/usr/bin/vmgr-mkimage
timings=("vmgr-mkimage (cached, inside the namespaces): $t_image ms")

# --- bad input: clear errors, nothing built ------------------------------------

# refused NAME REGEX ARGS...: vmgr-mkimage ARGS fails and says REGEX on stderr.
refused() {
        local name=$1 re=$2 out rc
        shift 2
        out=$("$MKIMAGE" "$@" 2>&1 >/dev/null) && rc=0 || rc=$?
        check "$name: fails" test "$rc" -ne 0
        check_match "$name: says why" "vmgr-mkimage: .*$re" "$out"
}
bad=$VMGR_TMP/bad
mkdir "$bad"
refused "unknown distribution" "unknown distribution 'fedora'" fedora "$bad/x.qcow2"
refused "no distribution" "distribution" --agent "$bad/x.qcow2"
refused "output directory missing" "'$bad/none' does not exist" debian "$bad/none/x.qcow2"
refused "output not .qcow2" "must end in \\.qcow2" debian "$bad/x.img"
refused "size 1" "--size: '1' is not a whole number of GiB" debian --size 1 "$bad/x.qcow2"
refused "bad package name" "--packages: 'a b' is not a Debian package name" debian --packages 'a b' "$bad/x.qcow2"
refused "agent not ELF" "is not an ELF executable" debian --agent-path /etc/passwd --cache-dir "$bad/c" "$bad/x.qcow2"
# A PATH with every tool but mmdebstrap.
mkdir "$bad/bin"
for f in /usr/local/bin/* /usr/bin/* /usr/sbin/* /bin/* /sbin/*; do
        [ "${f##*/}" = mmdebstrap ] || ln -sf "$f" "$bad/bin/" 2>/dev/null || true
done
out=$(PATH=$bad/bin "$MKIMAGE" debian --cache-dir "$bad/c" "$bad/x.qcow2" 2>&1 >/dev/null) && rc=0 || rc=$?
check "mmdebstrap missing: fails" test "$rc" -ne 0
check_match "mmdebstrap missing: names the package" \
        "^vmgr-mkimage: mmdebstrap not found; install it with: apt-get install .*mmdebstrap" "$out"
check_empty "bad input built nothing" "$(find "$bad" -name '*.qcow2')"

# --- the cache -------------------------------------------------------------------

check "the image is a qcow2 file" bash -c "qemu-img info '$image' | grep -q '^file format: qcow2'"
t0=$(vmgr_now_ms)
again=$(vmgr_test_debian_image --agent 2>/dev/null)
t=$(($(vmgr_now_ms) - t0))
timings+=("vmgr-mkimage cached, OUT already placed: $t ms")
check_eq "a second call with the same inputs and OUT prints OUT" "$image" "$again"
# Well under 1 s on an idle machine; a margin for a loaded one.
check "... in less than 2 s ($t ms)" test "$t" -lt 2000
t0=$(vmgr_now_ms)
again=$("$MKIMAGE" debian --agent-path "$VMGR_DESTDIR/usr/libexec/vmgr-agent" \
        --cache-dir "$VMGR_TEST_IMAGE_DIR/cache" "$VMGR_TMP/copy.qcow2" 2>/dev/null)
t=$(($(vmgr_now_ms) - t0))
timings+=("vmgr-mkimage cached, copied to a new file: $t ms")
check_eq "a second call with the same inputs prints OUT" "$VMGR_TMP/copy.qcow2" "$again"
check "... a copy of the cached image" cmp -s "$image" "$VMGR_TMP/copy.qcow2"
check "... not a hard link to it" test "$(stat -c %i "$image")" != "$(stat -c %i "$VMGR_TMP/copy.qcow2")"
check "... in less than 5 s ($t ms)" test "$t" -lt 5000
rm -f "$VMGR_TMP/copy.qcow2"

# --- boot through vmgrd (BIOS) -----------------------------------------------------

vmgr_start_bus
vmgr_start_vmgrd

spec='{"accelerator":"tcg","vms":[
        {"name":"d","disk":"'$image'","agent":true,"memory_mib":768},
        {"name":"e","disk":"'$image'","agent":true,"memory_mib":768,"ipv4":true,"firmware":"uefi"}]}'
t0=$(vmgr_now_ms)
check "CreateGroup g (two disk VMs of the image, BIOS and UEFI)" busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager \
        CreateGroup ss g "$spec"
[ -n "$(vmgr_group_path g)" ] || vmgr_finish
gpath=$(vmgr_group_path g)
d=$(vmgr_vm_path g d)
e=$(vmgr_vm_path g e)
out=$(busctl_as_user --timeout=400 call org.vmgr1 "$gpath" org.vmgr1.Group WaitReady t 380000000 2>&1) && rc=0 || rc=$?
t_ready=$(($(vmgr_now_ms) - t0))
timings+=("CreateGroup to both VMs ready (BIOS and UEFI, TCG, two VMs at once): $t_ready ms")
check_eq "Group.WaitReady succeeds ($t_ready ms)" "0" "$rc${out:+ $out}"
for vm in d e; do
        p=$(vmgr_vm_path g "$vm")
        check_eq "VM $vm is ready" ready "$(vmgr_vm_prop "$p" State)"
        if [ "$(vmgr_vm_prop "$p" State)" != ready ]; then
                vmgr_console_tail "$(vmgr_vm_prop "$p" ConsoleLog)"
        fi
done
console=$(vmgr_vm_prop "$d" ConsoleLog)
check "d's kernel logs to ttyS0" vmgr_console_has "$console" 'Linux version .*cloud-amd64' 1

# gx VM CMD...: vmgrctl exec in VM $1 of group g; stdout.
gx() {
        local vm=$1
        shift
        vmgrctl_as_user exec g "$vm" -- "$@" 2>&1
}

check_eq "exec: the guest is Debian bookworm" "bookworm" "$(gx d sh -c '. /etc/os-release; echo $VERSION_CODENAME')"
check_match "exec: the cloud kernel runs" 'cloud-amd64$' "$(gx d uname -r)"
check_eq "exec: exit status passes through" "3" "$(gx d sh -c 'exit 3' >/dev/null; echo $?)"
check_eq "hostname is the image's neutral default" "debian" "$(gx d hostname)"
check_eq "d booted with BIOS (no EFI in sysfs)" "bios" "$(gx d sh -c 'test -d /sys/firmware/efi && echo uefi || echo bios')"
check_eq "e booted with UEFI" "uefi" "$(gx e sh -c 'test -d /sys/firmware/efi && echo uefi || echo bios')"
check_match "... through systemd-boot" "systemd-boot" "$(gx e sh -c 'cat /sys/firmware/efi/efivars/LoaderInfo-* 2>/dev/null | tr -d "\\0"')"
ip6=$(vmgr_vm_prop "$d" IPv6)
check_match "d's derived IPv6 address is on enp1s0 ($ip6)" "inet6 ${ip6//./\\.}/64 scope global" \
        "$(gx d ip -6 addr show dev enp1s0)"
check_match "enp1s0 has no DHCPv6 or temporary address" '^$' \
        "$(gx d ip -6 addr show dev enp1s0 | grep -E 'inet6 [^ ]+/128|temporary' || true)"
check_eq "the agent runs under systemd" "active" "$(gx d systemctl is-active vmgr-agent.service)"
check_eq "systemd-networkd runs" "active" "$(gx d systemctl is-active systemd-networkd.service)"
check_eq "gatewayd's socket listens" "active" "$(gx d systemctl is-active systemd-journal-gatewayd.socket)"
check_eq "the system finished booting" "running" "$(gx d systemctl is-system-running --wait)"
check_eq "no failed units" "" "$(gx d systemctl list-units --failed --plain --no-legend)"
check_eq "cloud-init stays off without a seed" "disabled" \
        "$(gx d sh -c 'cloud-init status 2>/dev/null | sed -n "s/^status: //p"')"
machine_id=$(gx d cat /etc/machine-id)
check_match "the guest made its own machine ID" '^[0-9a-f]{32}$' "$machine_id"
check_match "the journal is persistent" "File path: /var/log/journal/$machine_id/system\\.journal" \
        "$(gx d journalctl --header)"
check_match "the journal has this boot's kernel lines" 'Linux version' "$(gx d journalctl -k -b --no-pager -q)"
check_match "root has no password" '^root:[*!]' "$(gx d getent shadow root)"
check_eq "d listens on 19531 only (TCP or UDP)" "*:19531" \
        "$(gx d ss -Hltun | awk '{print $5}' | sort -u | xargs)"
# From the host side, in vmgrd's network namespace: what vmgrd's journal
# follower will read.
out=$(vmgr_netns_exec curl -s -g --max-time 10 "http://[$ip6]:19531/machine" 2>&1 || true)
check_match "gatewayd answers /machine from the host with the guest's machine ID" \
        "\"machine_id\" *: *\"$machine_id\"" "$out"

ip4=$(vmgr_vm_prop "$e" IPv4)
check_match "e has a DHCPv4 lease ($ip4)" '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' "$ip4"
check_match "... configured on enp2s0" "inet ${ip4//./\\.}/24 " "$(gx e ip -4 addr show dev enp2s0)"
check_eq "d has no enp2s0" "absent" "$(gx d sh -c 'test -e /sys/class/net/enp2s0 || echo absent')"
check_match "... and e listens on 19531 and at most the DHCP client's port" '^(\*|0\.0\.0\.0):19531( .*:68)?$' \
        "$(gx e ss -Hltun | awk '{print $5}' | sort -u | xargs)"

check "Shutdown d through the agent" busctl_as_user --timeout=130 call org.vmgr1 "$d" org.vmgr1.VM Shutdown t 120000000
check_eq "d is stopped" stopped "$(vmgr_vm_prop "$d" State)"

for t in "${timings[@]}"; do
        echo "# timing: $t"
done
vmgr_finish
