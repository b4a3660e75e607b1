#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# cloud-init NoCloud seeds through vmgrd, with real libvirt and QEMU (TCG)
# booting the default guest (which ignores the seed but sees its disk):
#   - a VM with "cloud_init" gets DIR/cidata.iso, an ISO 9660 volume labelled
#     cidata holding meta-data (instance-id, local-hostname, the spec's keys),
#     the spec's user-data byte for byte, network-config with the VM's
#     derived MACs, and with install_agent the vendor-data boothook, the
#     installed vmgr-agent, its unit and its udev rule; nothing of the work
#     files is left beside it;
#   - the domain has it as a read-only raw virtio disk after the others; a VM
#     without "cloud_init" has none;
#   - the guest reads the volume and cannot write it: the seed's bytes on the
#     host are unchanged after the guest tried;
#   - a restart keeps the seed; the seed goes with the VM;
#   - a spec whose network_config is not an object or a string is refused.
# With a Debian image without the agent (VMGR_TEST_DEBIAN_IMAGE=PATH, e.g.
# from tests/integration/lib-image.sh), booted with install_agent and user-data:
#   - the VM becomes ready (the agent the seed installed answers); its host
#     name is the VM name, the user-data's file exists, enp1s0 has the
#     derived IPv6 address, enp2s0 a DHCPv4 lease; after a reboot it is
#     ready again. Prints the time from CreateGroup to ready.
# That part is skipped without an image. VMGR_TEST_DEBUG_DIR=DIR keeps the
# guest's console, journal and cloud-init schema check of each boot there.

source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-vm.sh"
vmgr_require_root
vmgr_vm_require_tools
command -v xorriso >/dev/null || { echo "# skipped: missing xorriso (tools/deps installs it)"; exit 77; }
vmgr_enter_netns "$@"
vmgr_start_bus
vmgr_start_vmgrd

vms_dir() {
        echo "$VMGR_TMP/state/vmgr/groups/$1/vms/$2"
}

# The user-data has quotes, a backslash and a non-ASCII character, which
# must reach the guest unchanged.
user_data=$'#cloud-config\nwrite_files:\n- path: /etc/vmgr-test\n  content: "a \\"b\\" \\\\ \xc3\xa9"\n'
user_data_json=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$user_data")
spec='{"vms":[{"name":"a_1","ipv4":true,"extra_disks":[{"size_mib":16}],
  "cloud_init":{"install_agent":true,"user_data":'"$user_data_json"',"meta_data":{"k":"v/w"}}},
  {"name":"b"}]}'
check "CreateGroup g (a_1 with a seed, b without)" \
        busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss g "$spec"
gpath=$(vmgr_group_path g)
a=$(vmgr_vm_path g a_1)
out=$(busctl_as_user --timeout=130 call org.vmgr1 "$gpath" org.vmgr1.Group WaitReady t 120000000 2>&1) && rc=0 || rc=$?
check_eq "Group.WaitReady g succeeds" "0" "$rc${out:+ $out}"

dir=$(vms_dir g a_1)
seed=$dir/cidata.iso
check "a_1 has its seed $seed" test -f "$seed"
check_eq "... an ISO 9660 volume labelled cidata" "iso9660 cidata" \
        "$(blkid -p -o value -s TYPE "$seed") $(blkid -p -o value -s LABEL "$seed")"
check_eq "... and nothing else of the making is left" "" \
        "$(find "$dir" -name 'cidata*' ! -name cidata.iso)"
check_eq "b has no seed" "" "$(find "$(vms_dir g b)" -name 'cidata*')"

x=$VMGR_TMP/seed
mkdir "$x"
xorriso -no_rc -osirrox on -indev "$seed" -extract / "$x" >/dev/null 2>&1
check_eq "the seed holds the seven files" \
        "90-vmgr-agent.rules meta-data network-config user-data vendor-data vmgr-agent vmgr-agent.service" \
        "$(cd "$x" && ls | xargs)"
check_eq "user-data is the spec's, byte for byte" "$(printf '%s' "$user_data" | sha256sum)" "$(sha256sum <"$x/user-data")"
meta=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["local-hostname"], d["k"], d["instance-id"][:5])' "$x/meta-data")
check_eq "meta-data: the host name (a-1), the spec's key, vmgr's instance-id" "a-1 v/w vmgr-" "$meta"
net=$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["ethernets"]; print(e["enp1s0"]["match"]["macaddress"], e["enp1s0"]["accept-ra"], e["enp2s0"]["match"]["macaddress"], e["enp2s0"]["dhcp4"])' "$x/network-config")
dom=$(vmgr_virsh dumpxml g:a_1)
mac=$(sed -n "s/.*<mac address='\([^']*\)'.*/\1/p" <<<"$dom" | head -n 1)
mac4=$(sed -n "s/.*<mac address='\([^']*\)'.*/\1/p" <<<"$dom" | sed -n 2p)
check_eq "network-config: enp1s0 and enp2s0 by the domain's MACs" "$mac True $mac4 True" "$net"
check_match "vendor-data is the boothook" '^#cloud-boothook' "$(head -n 1 "$x/vendor-data")"
check "the seed's agent is the installed one" cmp -s "$x/vmgr-agent" "$VMGR_DESTDIR/usr/libexec/vmgr-agent"
check "the seed's unit is the installed one" \
        cmp -s "$x/vmgr-agent.service" "$VMGR_DESTDIR/usr/share/vmgr/agent/vmgr-agent.service"

disks=$(python3 -c '
import sys, xml.etree.ElementTree as ET
for d in ET.fromstring(sys.stdin.read()).iter("disk"):
    print(d.find("target").get("dev"), d.find("source").get("file").rsplit("/", 1)[1],
          d.find("driver").get("type"), "ro" if d.find("readonly") is not None else "rw")' <<<"$dom" | xargs)
check_eq "the domain: the extra disk vda, then the seed vdb, read-only raw" \
        "vda extra0.qcow2 qcow2 rw vdb cidata.iso raw ro" "$disks"
check_eq "b's domain has no seed" "" "$(vmgr_virsh dumpxml g:b | grep cidata || true)"

# The guest sees the volume (ISO 9660's "CD001" at byte 32769, the volume
# id at 32808) and cannot change it.
check_eq "the guest reads the seed on vdb" "CD001 cidata" \
        "$(vmgrctl_as_user exec g a_1 -- sh -c 'dd if=/dev/vdb bs=1 skip=32769 count=5 2>/dev/null; echo -n " "; dd if=/dev/vdb bs=1 skip=32808 count=6 2>/dev/null')"
before=$(sha256sum <"$seed")
rc=0
vmgrctl_as_user exec g a_1 -- sh -c 'dd if=/dev/zero of=/dev/vdb bs=2048 count=32 conv=fsync 2>/dev/null' || rc=$?
check "the guest's write to the seed fails" test "$rc" -ne 0
check_eq "the seed on the host is unchanged" "$before" "$(sha256sum <"$seed")"

# A restart boots from the same domain, seed included; the seed is not made again.
ino=$(stat -c %i "$seed")
check "vm restart g a_1" vmgrctl_as_user vm restart g a_1
out=$(busctl_as_user --timeout=130 call org.vmgr1 "$a" org.vmgr1.VM WaitReady t 120000000 2>&1) && rc=0 || rc=$?
check_eq "a_1 is ready again" "0" "$rc${out:+ $out}"
check_eq "... with the same seed file" "$ino $before" "$(stat -c %i "$seed") $(sha256sum <"$seed")"

check "vm remove g a_1" vmgrctl_as_user vm remove g a_1
check "the VM's directory, seed included, is gone" test ! -e "$seed" -a ! -e "$dir"

# --- refused specs -------------------------------------------------------------------

out=$(vmgr_dbus_error /org/vmgr1 org.vmgr1.Manager.CreateGroup string:y \
        'string:{"vms":[{"name":"a","cloud_init":{"network_config":5}}]}')
check_match "network_config 5 is refused naming its path" \
        '^org\.vmgr1\.Error\.InvalidSpec: .*vms\[0\]\.cloud_init\.network_config: ' "$out"

# --- a stock Debian image without the agent -------------------------------------------

# Only with VMGR_TEST_DEBIAN_IMAGE: in the suite, test-real-guest.sh boots
# the stock image with install_agent and user-data (in both modes), and two
# more Debian boots per mode here would cost minutes for little more.
debian_image=${VMGR_TEST_DEBIAN_IMAGE:-}
if [ -z "$debian_image" ] || [ ! -r "$debian_image" ]; then
        echo "# no Debian image (VMGR_TEST_DEBIAN_IMAGE): skipping the stock image part (test-real-guest.sh covers it)"
        vmgr_finish
fi
cp "$debian_image" "$VMGR_TMP/debian.qcow2"
chown "$VMGR_USER:" "$VMGR_TMP/debian.qcow2"

user_data=$'#cloud-config\nwrite_files:\n- path: /etc/vmgr-test\n  content: written by cloud-init\n'
user_data_json=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$user_data")
# The agent starts while cloud-init is still at work (from its boothook):
# the probe makes "ready" wait for cloud-init to finish.
spec='{"vms":[{"name":"deb","disk":"'$VMGR_TMP/debian.qcow2'","memory_mib":1024,"ipv4":true,
  "ready_probe":["cloud-init","status","--wait"],
  "cloud_init":{"install_agent":true,"user_data":'"$user_data_json"'}}]}'
t0=$(vmgr_now_ms)
check "CreateGroup d (deb: stock Debian image, seed with the agent)" \
        busctl_as_user call org.vmgr1 /org/vmgr1 org.vmgr1.Manager CreateGroup ss d "$spec"
deb=$(vmgr_vm_path d deb)
out=$(busctl_as_user --timeout=400 call org.vmgr1 "$deb" org.vmgr1.VM WaitReady t 380000000 2>&1) && rc=0 || rc=$?
t_ready=$(($(vmgr_now_ms) - t0))
check_eq "deb becomes ready through the agent the seed installed ($t_ready ms from CreateGroup)" "0" "$rc${out:+ $out}"
echo "# deb: CreateGroup to ready $t_ready ms; timings (usec): $(busctl_as_user get-property org.vmgr1 "$deb" org.vmgr1.VM Timings 2>/dev/null | tr '\n' ' ')"
debug_dump() {
        [ -n "${VMGR_TEST_DEBUG_DIR:-}" ] || return 0
        cp "$(vmgr_vm_prop "$deb" ConsoleLog)" "$VMGR_TEST_DEBUG_DIR/console-$1.log" || true
        vmgrctl_as_user exec d deb -- journalctl -b --no-pager >"$VMGR_TEST_DEBUG_DIR/journal-$1.log" 2>&1 || true
        vmgrctl_as_user exec d deb -- cloud-init schema --system >"$VMGR_TEST_DEBUG_DIR/schema-$1.log" 2>&1 || true
}
debug_dump first
if [ "$rc" -ne 0 ]; then
        # cloud-init's and the agent's console lines, then the end of the console.
        console=$(vmgr_vm_prop "$deb" ConsoleLog)
        grep -a -E 'cloud-init|vmgr|cidata' "$console" | tail -n 40 | sed 's/^/#   /'
        echo "#   ..."
        tail -n 40 "$console" | sed 's/^/#   /'
fi
check_eq "hostname in the guest is the VM name" deb "$(vmgrctl_as_user exec d deb -- hostname)"
check_eq "the file from user-data exists" "written by cloud-init" "$(vmgrctl_as_user exec d deb -- cat /etc/vmgr-test)"
ipv6=$(vmgr_vm_prop "$deb" IPv6)
check_match "enp1s0 has the derived address $ipv6" "inet6 $ipv6/64 " \
        "$(vmgrctl_as_user exec d deb -- ip -6 addr show dev enp1s0)"
check_match "enp2s0 has a DHCPv4 lease" "inet 10\." "$(vmgrctl_as_user exec d deb -- ip -4 addr show dev enp2s0)"
check_eq "the agent runs from the unit the seed installed" "active /usr/local/bin/vmgr-agent" \
        "$(vmgrctl_as_user exec d deb -- sh -c 'echo $(systemctl is-active vmgr-agent) $(readlink /proc/$(systemctl show -P MainPID vmgr-agent)/exe)')"

# A reboot from inside (the image ignores the ACPI power button that
# VM.Reboot presses: it has no logind): the agent is in place and udev
# starts it before cloud-init's boothooks run; the boothook changes nothing.
boot_id=$(vmgrctl_as_user exec d deb -- cat /proc/sys/kernel/random/boot_id)
t0=$(vmgr_now_ms)
check "systemctl reboot in the guest" vmgrctl_as_user exec d deb -- systemctl reboot --no-block
new_boot() {
        local id
        id=$(vmgrctl_as_user exec d deb -- cat /proc/sys/kernel/random/boot_id) && [ "$id" != "$boot_id" ]
}
vmgr_wait_until 300 new_boot && rc=0 || rc=$?
check_eq "deb answers from a new boot ($(($(vmgr_now_ms) - t0)) ms after the reboot)" 0 "$rc"
order=$(vmgrctl_as_user exec d deb -- sh -c 'a=$(systemctl show -P ExecMainStartTimestampMonotonic vmgr-agent)
        c=$(systemctl show -P ExecMainStartTimestampMonotonic cloud-init)
        [ "$a" -gt 0 ] && { [ "$c" -eq 0 ] || [ "$a" -lt "$c" ]; } && echo agent-first || echo "agent $a cloud-init $c"')
check_eq "... where udev started the agent before cloud-init's network stage" agent-first "$order"
check_eq "... and the boothook installed nothing" "" \
        "$(vmgrctl_as_user exec d deb -- sh -c 'journalctl -b -u vmgr-agent -o cat | grep -c "Stopping\|Stopped" || :' | grep -v '^0$' || :)"
debug_dump second

vmgr_finish
