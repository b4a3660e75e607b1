# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sourced by lib.sh: the leak checker. Given the groups that should exist,
# vmgr_leaks lists everything vmgr makes that none of them owns, in the
# test's namespaces:
#   - links with a "vmgr:" alias, or named like a bridge or TAP
#     (docs/addressing.md), that are not the bridge or a TAP of a VM of
#     one of the groups (vmgrd is asked for each group's VMs);
#   - fd00::/8 (and 10/8) addresses on lo but the service addresses of the
#     groups (management, logs, files);
#   - processes of vmgrd's user (zombies too) that are not the live vmgrd
#     (found through the bus, GetConnectionUnixProcessID), its namespace
#     holder, a helper of either, one libvirtd, one dnsmasq per group
#     bridge, one QEMU per VM; a dnsmasq or QEMU must also live in the
#     network namespace of the groups; clients (vmgrctl, busctl, dbus-send)
#     and the test's bus are not vmgr's and are left out;
#   - processes in (or holding an fd of) the network namespace of a holder
#     that is not the live one;
#   - libvirt domains (virsh against vmgrd's private libvirtd) and
#     libvirt's per-domain files for VMs that do not exist;
#   - files under the state and runtime directories for groups or VMs that
#     do not exist (state groups/NAME.json and groups/NAME/, a VM's
#     directory in it, runtime groups/NAME/, agent/TAP.sock);
#   - rules, chains and set or map elements of nft table inet vmgr that
#     name a bridge no group owns, or a chain of another uid.
# One line per leak, empty when clean; a group that should exist but
# vmgrd does not know is reported too. tests/integration/test-chaos-checker.sh
# plants one leak of each kind and checks that each is reported.

# The pid of the process that owns org.vmgr1 on the test's bus, from the bus
# itself (not from $!: see vmgr_start_vmgrd); nothing if no one owns it.
vmgr_vmgrd_bus_pid() {
        local out
        out=$(busctl_as_user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus \
                GetConnectionUnixProcessID s org.vmgr1 2>/dev/null) || return 0
        echo "${out#u }"
}

# Print the VM names of group $1 as vmgrd knows them, one per line; status 1
# if vmgrd does not know the group or cannot be asked.
vmgr_leaks_group_vms() {
        local path out p
        path=$(vmgr_group_path "$1" 2>/dev/null) || return 1
        [ -n "$path" ] || return 1
        out=$(busctl_as_user --json=short get-property org.vmgr1 "$path" org.vmgr1.Group VMs 2>/dev/null) || return 1
        for p in $(python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])["data"]))' "$out"); do
                out=$(busctl_as_user get-property org.vmgr1 "$p" org.vmgr1.VM Name 2>/dev/null) || return 1
                out=${out#s \"}
                echo "${out%\"}"
        done
}

# Print "NAME ALIAS MASTER" for every link of the current network namespace
# ("-" for a missing alias or master).
vmgr_leaks_links_here() {
        ip -d -j link show 2>/dev/null | python3 -c '
import json, sys
for l in json.load(sys.stdin):
    print(l["ifname"], l.get("ifalias") or "-", l.get("master") or "-")'
}

# Print every fd00::/8 address and every 10/8 address on lo of the current
# network namespace, without its prefix length.
vmgr_leaks_lo_here() {
        ip -o addr show dev lo 2>/dev/null | awk '$4 ~ /^(fd|10\.)/ { sub("/.*", "", $4); print $4 }'
}

# Print the bridge names (vbr-*) and chain names (u<uid>-vbr-*) that nft
# table inet vmgr of the current network namespace mentions, one per line:
# "bridge NAME" or "chain NAME"; nothing if there is no table.
vmgr_leaks_nft_here() {
        local t
        t=$(nft list table inet vmgr 2>/dev/null) || return 0
        grep -o -E 'u[0-9]+-vbr-[0-9a-f]{10}' <<<"$t" | sort -u | sed 's/^/chain /'
        sed -E 's/u[0-9]+-vbr-[0-9a-f]{10}//g' <<<"$t" | grep -o -E 'vbr-[0-9a-f]{10}' | sort -u | sed 's/^/bridge /'
        return 0
}

# vmgr_leaks GROUP...: print everything vmgr-made that none of the groups
# GROUP... owns, one line each (see the top of this file); empty when
# clean. Call it while vmgrd runs: its processes are known by its bus
# name, the VMs of each group by asking it.
vmgr_leaks() {
        local uid g vm k v
        uid=$(id -u "$VMGR_USER")
        # What the groups own: bridges, aliases, lo addresses, VMs and their TAPs.
        local -A own_group=() own_bridge=() own_lo=() own_vm=() own_tap=() own_agent=()
        for g in "$@"; do
                own_group[$g]=1
                vmgr_load_expected _vmgr_leak_exp "$g"
                own_bridge[${_vmgr_leak_exp[bridge]}]=$g
                for k in management6 logs6 files6; do
                        own_lo[${_vmgr_leak_exp[$k]}]=$g
                done
                local vms
                if ! vms=$(vmgr_leaks_group_vms "$g"); then
                        echo "group $g should exist, but vmgrd does not know it"
                        continue
                fi
                for vm in $vms; do
                        own_vm[$g:$vm]=1
                        vmgr_load_expected _vmgr_leak_exp "$g" "$vm"
                        own_tap[${_vmgr_leak_exp[tap]}]=$g:$vm
                        own_tap[${_vmgr_leak_exp[tap4]}]=$g:$vm
                        own_agent[${_vmgr_leak_exp[tap]}.sock]=$g:$vm
                done
        done

        local vmgrd holder= groups_ns test_ns
        vmgrd=$(vmgr_vmgrd_bus_pid)
        [ -n "$vmgrd" ] || echo "no vmgrd owns org.vmgr1 (the checker needs the live one)"
        # Files are looked for there: a checker looking elsewhere would
        # find nothing, and pass.
        local d
        for d in "$VMGR_TMP/run/vmgr" "$VMGR_TMP/state/vmgr"; do
                [ -z "$vmgrd" ] || [ -d "$d" ] || echo "no directory $d: vmgrd's directories are elsewhere"
        done
        if [ -n "$vmgrd" ]; then
                holder=$(pgrep -P "$vmgrd" -x vmgrd-netns | head -n 1 || true)
        fi
        if [ -z "$holder" ] && [ "$VMGR_NET_MODE" = namespace ]; then
                # A holder that outlived the vmgrd that made it (adoption):
                # it is no child of the live vmgrd; there must be one only.
                holder=$(pgrep -u "$VMGR_USER" -x vmgrd-netns || true)
                if [ "$(wc -w <<<"$holder")" -ne 1 ]; then
                        echo "namespace mode: not exactly one namespace holder (vmgrd-netns) but: ${holder:-none}"
                        holder=$(head -n 1 <<<"$holder")
                fi
        fi
        test_ns=$(readlink /proc/self/ns/net)
        groups_ns=$test_ns
        local -a in_groups_ns=()
        if [ -n "$holder" ]; then
                groups_ns=$(readlink "/proc/$holder/ns/net" 2>/dev/null || true)
                in_groups_ns=(nsenter -t "$holder" -n --)
        fi

        # --- links and lo addresses ---
        local where name alias master
        for where in groups test; do
                local -a run=()
                local suffix=""
                if [ "$where" = test ]; then
                        # In host mode it is the same namespace.
                        [ "$groups_ns" != "$test_ns" ] || continue
                        suffix=" (in the test's own namespace, where namespace mode puts nothing)"
                else
                        run=("${in_groups_ns[@]}")
                        [ "$groups_ns" != "$test_ns" ] && suffix=" (in vmgrd's namespace)"
                fi
                while read -r name alias master; do
                        local named=0 aliased=0
                        [[ $name =~ ^(vbr|tap|ta4)-[0-9a-f]{10}$ ]] && named=1
                        [[ $alias == vmgr:* ]] && aliased=1
                        [ $named = 1 ] || [ $aliased = 1 ] || continue
                        if [ "$where" = groups ]; then
                                if [ $aliased = 1 ] && [ "${alias#vmgr:$uid:}" = "$alias" ]; then
                                        echo "link $name (alias $alias): another uid's alias$suffix"
                                        continue
                                fi
                                g=${alias#vmgr:$uid:}
                                if [ -n "${own_bridge[$name]:-}" ]; then
                                        [ $aliased = 0 ] || [ "$g" = "${own_bridge[$name]}" ] && continue
                                elif [ -n "${own_tap[$name]:-}" ]; then
                                        [ $aliased = 0 ] || [ "$g" = "${own_tap[$name]%%:*}" ] && continue
                                fi
                        fi
                        echo "link $name (alias $alias, master $master): no group owns it$suffix"
                done < <("${run[@]}" bash -c "$(declare -f vmgr_leaks_links_here); vmgr_leaks_links_here")
                while read -r v; do
                        [ "$where" = groups ] && [ -n "${own_lo[$v]:-}" ] && continue
                        echo "lo address $v: no group owns it$suffix"
                done < <("${run[@]}" bash -c "$(declare -f vmgr_leaks_lo_here); vmgr_leaks_lo_here")
                while read -r k v; do
                        if [ "$k" = chain ]; then
                                if [ "${v%%-*}" != "u$uid" ]; then
                                        echo "nft chain inet vmgr $v: another uid's$suffix"
                                        continue
                                fi
                                [ "$where" = groups ] && [ -n "${own_bridge[${v#*-}]:-}" ] && continue
                                echo "nft chain inet vmgr $v: no group owns its bridge$suffix"
                        else
                                [ "$where" = groups ] && [ -n "${own_bridge[$v]:-}" ] && continue
                                echo "nft table inet vmgr names $v: no group owns it$suffix"
                        fi
                done < <("${run[@]}" bash -c "$(declare -f vmgr_leaks_nft_here); vmgr_leaks_nft_here")
        done

        # --- processes ---
        local pid ppid stat comm ns cmd libvirtds=0
        local -A seen_dnsmasq=() seen_qemu=()
        while read -r pid ppid stat comm; do
                [ "$pid" = "${VMGR_BUS_PID:-}" ] && continue
                case $comm in
                vmgrctl | busctl | dbus-send) continue ;;
                esac
                if [[ $stat == Z* ]]; then
                        echo "zombie $pid $comm (parent $ppid)"
                        continue
                fi
                ns=$(readlink "/proc/$pid/ns/net" 2>/dev/null) || continue
                cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
                case $comm in
                vmgrd)
                        [ "$pid" = "$vmgrd" ] && continue
                        echo "process $pid vmgrd: a vmgrd that does not own org.vmgr1"
                        continue
                        ;;
                vmgrd-netns)
                        [ "$pid" = "$holder" ] && continue
                        echo "process $pid vmgrd-netns: a namespace holder the live vmgrd does not use"
                        continue
                        ;;
                vmgr-netadm)
                        [ -n "$vmgrd" ] && [ "$ppid" = "$vmgrd" ] && continue
                        [ -n "$holder" ] && [ "$ppid" = "$holder" ] && continue
                        echo "process $pid vmgr-netadm: a helper of no live vmgrd (parent $ppid)"
                        continue
                        ;;
                libvirtd)
                        libvirtds=$((libvirtds + 1))
                        if [ -z "$vmgrd" ]; then
                                echo "process $pid libvirtd: no vmgrd runs"
                        elif [ "$libvirtds" -gt 1 ]; then
                                echo "process $pid libvirtd: a second libvirtd"
                        fi
                        continue
                        ;;
                dnsmasq)
                        v=$(grep -o -E -e '--interface=[^ ]+' <<<"$cmd" | head -n 1)
                        v=${v#--interface=}
                        if [ -z "${own_bridge[$v]:-}" ]; then
                                echo "process $pid dnsmasq for ${v:-no interface}: no group owns it"
                        elif [ "$ns" != "$groups_ns" ]; then
                                echo "process $pid dnsmasq for $v (group ${own_bridge[$v]}): in network namespace $ns, not the groups' $groups_ns"
                        elif [ -n "${seen_dnsmasq[$v]:-}" ]; then
                                echo "process $pid dnsmasq for $v (group ${own_bridge[$v]}): a second one (also ${seen_dnsmasq[$v]})"
                        fi
                        seen_dnsmasq[$v]=$pid
                        continue
                        ;;
                qemu-system-x86)
                        v=$(grep -o -E -e '-name guest=[^, ]+' <<<"$cmd" | head -n 1)
                        v=${v#-name guest=}
                        if [ -z "${own_vm[$v]:-}" ]; then
                                echo "process $pid QEMU of ${v:-no name}: no VM of a group"
                        elif [ "$ns" != "$groups_ns" ]; then
                                echo "process $pid QEMU of $v: in network namespace $ns, not the groups' $groups_ns"
                        elif [ -n "${seen_qemu[$v]:-}" ]; then
                                echo "process $pid QEMU of $v: a second one (also ${seen_qemu[$v]})"
                        fi
                        seen_qemu[$v]=$pid
                        continue
                        ;;
                esac
                echo "process $pid $comm: not vmgr's (parent $ppid): ${cmd:0:120}"
        done < <(ps -u "$VMGR_USER" -o pid=,ppid=,stat=,comm= 2>/dev/null || true)

        # Old holders' network namespaces: nothing may be in one or hold it.
        local p pattern
        for ns in ${VMGR_HOLDER_NETNS[$VMGR_USER]:-}; do
                [ "$ns" = "$groups_ns" ] && continue
                pattern='net:\['"${ns//[^0-9]/}"'\]'
                while read -r p; do
                        p=${p#/proc/}
                        echo "process ${p%%/*} $(cat "/proc/${p%%/*}/comm" 2>/dev/null) is in or holds the old namespace $ns (/proc/$p)"
                done < <(find /proc/[0-9]*/ns/net /proc/[0-9]*/fd -maxdepth 1 -lname "$pattern" 2>/dev/null || true)
        done

        # --- libvirt domains and files ---
        local sock=$VMGR_TMP/run/vmgr/libvirt/run/libvirt/libvirt-sock out
        if [ -n "$vmgrd" ] && [ "$libvirtds" -gt 0 ]; then
                if out=$(vmgr_as_user virsh -q -c "qemu:///session?socket=$sock" list --all --name 2>&1); then
                        while read -r v; do
                                [ -n "$v" ] || continue
                                [ -n "${own_vm[$v]:-}" ] && continue
                                echo "libvirt domain $v: no VM of a group"
                        done <<<"$out"
                else
                        echo "virsh list failed while a libvirtd runs: $out"
                fi
        fi
        local f base
        while read -r f; do
                base=${f##*/}
                v=${base#domain-*-}
                v=${v%.pid}
                v=${v%.xml}
                [[ $v == *:* ]] || continue
                [ -n "${own_vm[$v]:-}" ] && continue
                echo "file $f: of VM $v, which no group has"
        done < <(find "$VMGR_TMP/run/vmgr/libvirt" \( -name '*:*.pid' -o -name '*:*.xml' -o -name 'domain-*-*:*' \) \
                -print 2>/dev/null || true)
        while read -r f; do
                base=${f##*/}
                [ -n "${own_agent[$base]:-}" ] && continue
                echo "file $f: the agent socket of no VM of a group"
        done < <(find "$VMGR_TMP/run/vmgr/agent" -mindepth 1 -maxdepth 1 -print 2>/dev/null || true)
        while read -r f; do
                g=${f##*/}
                [ -n "${own_group[$g]:-}" ] && continue
                echo "file $f: of group $g, which should not exist"
        done < <(find "$VMGR_TMP/run/vmgr/groups" -mindepth 1 -maxdepth 1 -print 2>/dev/null || true)
        # Short stand-ins for the runtime directory's sockets
        # (/tmp/vmgrd-XXXXXX/r, daemon/sockdir.h): the live vmgrd's, the
        # one RUNTIME/sockdir names; no other may lead into this test's.
        local live_sockdir
        live_sockdir=$(readlink "$VMGR_TMP/run/vmgr/sockdir" 2>/dev/null || true)
        for f in /tmp/vmgrd-??????; do
                [[ $(readlink "$f/r" 2>/dev/null) == "$VMGR_TMP"/* ]] || continue
                if [ -n "$vmgrd" ]; then
                        [ "$live_sockdir" = "$f" ] || [ "$live_sockdir" = "$f/r" ] && continue
                fi
                echo "file $f: a socket directory stand-in for this runtime directory that vmgrd does not use"
        done
        while read -r f; do
                g=${f##*/}
                g=${g%.json}
                [ -n "${own_group[$g]:-}" ] && continue
                echo "file $f: of group $g, which should not exist"
        done < <(find "$VMGR_TMP/state/vmgr/groups" -mindepth 1 -maxdepth 1 -print 2>/dev/null || true)
        while read -r f; do
                vm=${f##*/}
                g=${f%/vms/*}
                g=${g##*/}
                [ -z "${own_group[$g]:-}" ] && continue
                [ -n "${own_vm[$g:$vm]:-}" ] && continue
                echo "file $f: of VM $vm, which group $g does not have"
        done < <(find "$VMGR_TMP/state/vmgr/groups" -mindepth 3 -maxdepth 3 -path '*/vms/*' -print 2>/dev/null || true)
        return 0
}

# vmgr_leaks_wait SECONDS GROUP...: vmgr_leaks until it prints nothing or
# SECONDS have passed (what is torn down, a zombie not reaped yet, takes a
# moment); print what it printed last. A vmgr_leaks that breaks off (an
# unset variable, say) prints a line saying so: a check that broke must
# not pass for one that found nothing.
vmgr_leaks_wait() {
        local end=$((SECONDS + $1)) out rc
        shift
        while :; do
                rc=0
                out=$(vmgr_leaks "$@") || rc=$?
                [ "$rc" -eq 0 ] || out+="${out:+$'\n'}the leak check broke off (status $rc)"
                [ -z "$out" ] && return 0
                [ "$SECONDS" -lt "$end" ] || break
                sleep 0.3
        done
        echo "$out"
}

# check_no_leaks NAME GROUP...: a check that nothing vmgr-made is left
# beyond what GROUP... own (vmgr_leaks, waiting up to 10 s).
check_no_leaks() {
        local name=$1
        shift
        check_empty "$name" "$(vmgr_leaks_wait 10 "$@")"
}
