# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sourced after lib.sh by the tests that boot VMs through vmgrd (real
# libvirt, real QEMU under TCG). Helpers to find a VM's object and
# properties, wait for its console, talk to vmgrd's private libvirtd and
# list what a group left behind.

# Exit 77 (skipped) unless QEMU, libvirtd, virsh, dnsmasq, ping and a Debian
# cloud kernel are installed (tools/deps installs them).
vmgr_vm_require_tools() {
        local missing=() t
        for t in qemu-system-x86_64 virsh ping; do
                command -v "$t" >/dev/null || missing+=("$t")
        done
        [ -x "$(command -v libvirtd || echo /usr/sbin/libvirtd)" ] || missing+=(libvirtd)
        [ -x "$(command -v dnsmasq || echo /usr/sbin/dnsmasq)" ] || missing+=(dnsmasq)
        compgen -G '/boot/vmlinuz-*-cloud-amd64' >/dev/null || missing+=(linux-image-cloud-amd64)
        if [ ${#missing[@]} -gt 0 ]; then
                echo "# skipped: missing ${missing[*]} (tools/deps installs them)"
                exit 77
        fi
}

# The start of a test that boots VMs through vmgrd: as root, with the VM
# tools, in the test's own namespaces (re-executes the script there: pass
# the script's "$@"), a private bus and vmgrd running as the test user.
vmgr_vm_test_begin() {
        vmgr_require_root
        vmgr_vm_require_tools
        vmgr_enter_netns "$@"
        vmgr_start_bus
        vmgr_start_vmgrd
}

# Milliseconds since the epoch.
vmgr_now_ms() {
        local t
        t=$(date +%s%N)
        echo $((t / 1000000))
}

# vmgr_wait_until SECONDS CMD...: run CMD every 0.1 s until it succeeds
# (true) or SECONDS have passed (false).
vmgr_wait_until() {
        local deadline=$(($(vmgr_now_ms) + $1 * 1000))
        shift
        while :; do
                "$@" >/dev/null 2>&1 && return 0
                [ "$(vmgr_now_ms)" -lt "$deadline" ] || return 1
                sleep 0.1
        done
}

# Object path of VM $2 of group $1, from Group.GetVM: empty if vmgrd says
# there is no such group or VM; any other failure is a failed read
# (vmgr_read_failed in lib.sh), status 1.
vmgr_vm_path() {
        local group out
        group=$(vmgr_group_path "$1") || return 1
        [ -n "$group" ] || return 0
        if ! out=$(busctl_as_user call org.vmgr1 "$group" org.vmgr1.Group GetVM s "$2" 2>&1); then
                [[ $out == *"has no VM '$2'"* ]] && return 0
                vmgr_read_failed "GetVM $1/$2 failed: $out"
                return 1
        fi
        out=${out#o \"}
        echo "${out%\"}"
}

# Value of property $2 of the VM at path $1 as text. If it cannot be read:
# nothing on stdout, a failed read (vmgr_read_failed in lib.sh), status 1,
# so that a check that it is empty (LastError, say) fails.
vmgr_vm_prop() {
        local out
        if ! out=$(busctl_as_user get-property org.vmgr1 "$1" org.vmgr1.VM "$2" 2>&1); then
                vmgr_read_failed "cannot read property $2 of VM '$1': $out"
                return 1
        fi
        out=${out#* }
        out=${out#\"}
        echo "${out%\"}"
}

# True if the VM at path $1 is in state $2.
vmgr_vm_in_state() {
        [ "$(vmgr_vm_prop "$1" State)" = "$2" ]
}

# States of a VM whose QEMU runs and whose guest is up: "ready" once its
# guest agent says so, "running" before (or without an agent).
# shellcheck disable=SC2034 # used by the tests that source this file
VMGR_VM_UP='^(running|ready)$'

# vmgr_dbus_error DBUS-SEND-ARGS...: call a method with dbus-send as the test
# user; print "ERROR-NAME: message" if it fails, nothing if it succeeds.
vmgr_dbus_error() {
        local out
        out=$(vmgr_as_user dbus-send --session --print-reply --dest=org.vmgr1 "$@" 2>&1) && return 0
        sed -n 's/^Error \([^:]*\): /\1: /p' <<<"$out"
}

# virsh as the test user against vmgrd's private libvirtd.
vmgr_virsh() {
        local sock=$VMGR_TMP/run/vmgr/libvirt/run/libvirt/libvirt-sock
        vmgr_as_user virsh -q -c "qemu:///session?socket=$sock" "$@"
}

# Number of lines of console file $1 that match extended regex $2.
vmgr_console_count() {
        local n
        n=$(grep -a -c -E -- "$2" "$1" 2>/dev/null) || true
        echo "${n:-0}"
}

# True if console file $1 has at least $3 lines matching extended regex $2.
vmgr_console_has() {
        [ "$(vmgr_console_count "$1" "$2")" -ge "$3" ]
}

# vmgr_wait_console FILE REGEX COUNT SECONDS: true once FILE has COUNT lines
# matching REGEX.
vmgr_wait_console() {
        vmgr_wait_until "$4" vmgr_console_has "$1" "$2" "$3"
}

# The first value of console line "vmgr-guest: KEY VALUE" in file $1 for key $2.
vmgr_console_value() {
        sed -n "s|^vmgr-guest: $2 \([^ ]*\).*|\1|p" "$1" 2>/dev/null | tr -d '\r' | head -n 1
}

# The last 25 lines of console file $1, for failure details.
vmgr_console_tail() {
        tail -n 25 "$1" 2>/dev/null | tr -d '\r' | sed 's/^/console: /' || true
}

# PIDs of the QEMU running VM $2 of group $1 (its libvirt domain "GROUP:VM").
vmgr_qemu_pids() {
        pgrep -u "$VMGR_USER" -f "^/usr/bin/qemu-system-x86_64 -name guest=$1:$2," || true
}

# vmgr_group_leftovers GROUP VM...: print what is left of GROUP and its VMs,
# one per line: its bridge and TAPs, QEMUs and libvirt domains of its VMs, its
# state file and directory (VM disks and consoles), its runtime directory.
# Needs vmgrd's libvirtd to be running (for the domain list). Only the VMs
# named are looked for, so that one VM's removal can be checked on its own.
# shellcheck disable=SC2154 # _vmgr_lo_exp is filled by vmgr_load_expected
vmgr_group_leftovers() {
        local group=$1 vm pid name domains
        # A libvirtd that does not answer must not pass for one without domains.
        domains=$(vmgr_virsh list --all --name 2>&1) || echo "virsh list failed: $domains"
        vmgr_load_expected _vmgr_lo_exp "$group"
        vmgr_netns_exec ip -o link show dev "${_vmgr_lo_exp[bridge]}" >/dev/null 2>&1 && echo "bridge ${_vmgr_lo_exp[bridge]}"
        for vm in "${@:2}"; do
                vmgr_load_expected _vmgr_lo_exp "$group" "$vm"
                for name in "${_vmgr_lo_exp[tap]}" "${_vmgr_lo_exp[tap4]}"; do
                        vmgr_netns_exec ip -o link show dev "$name" >/dev/null 2>&1 && echo "link $name (VM $vm)"
                done
                for pid in $(vmgr_qemu_pids "$group" "$vm"); do
                        echo "qemu $pid (VM $vm)"
                done
                grep -x -F "$group:$vm" <<<"$domains" | sed 's/^/libvirt domain /' || true
        done
        local f
        for f in "$VMGR_TMP/state/vmgr/groups/$group.json" "$VMGR_TMP/state/vmgr/groups/$group" \
                "$VMGR_TMP/run/vmgr/groups/$group"; do
                [ -e "$f" ] && echo "file $f"
        done
        return 0
}
