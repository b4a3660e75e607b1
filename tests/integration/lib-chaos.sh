# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Sourced after lib.sh and lib-vm.sh by the chaos tests (test-chaos.sh,
# test-chaos-pieces.sh, test-reexec.sh): what they ask of a group after
# something died (does it still work?) and what they remember of it
# before (which pids it had).

# Names of vmgrd's groups, oldest first, one per line; status 1 (and a
# failed read, see vmgr_read_failed) if vmgrd cannot be asked.
chaos_groups() {
        local out
        if ! out=$(busctl_as_user --json=short call org.vmgr1 /org/vmgr1 org.vmgr1.Manager ListGroups 2>&1); then
                vmgr_read_failed "ListGroups failed: $out"
                return 1
        fi
        python3 -c 'import json,sys; [print(g[0]) for g in json.loads(sys.argv[1])["data"][0]]' "$out"
}

# The names group $1 serves, one per line (ServedFiles).
chaos_served() {
        local path out
        path=$(vmgr_group_path "$1") && [ -n "$path" ] || return 1
        out=$(busctl_as_user --json=short get-property org.vmgr1 "$path" org.vmgr1.Group ServedFiles 2>&1) || return 1
        python3 -c 'import json,sys; [print(f[0]) for f in json.loads(sys.argv[1])["data"]]' "$out"
}

# chaos_run GROUP VM TIMEOUT_SEC CMD...: VM.Run CMD in the guest; print its
# stdout, return its exit status (or 255 with the call's error on stderr
# when the call fails).
chaos_run() {
        local path out
        path=$(vmgr_vm_path "$1" "$2" 2>/dev/null) && [ -n "$path" ] || {
                echo "no VM $1/$2" >&2
                return 255
        }
        local timeout=$3
        shift 3
        if ! out=$(busctl_as_user --json=short --timeout=$((timeout + 5)) -- call org.vmgr1 "$path" org.vmgr1.VM Run \
                asayt $# "$@" 0 $((timeout * 1000000)) 2>&1); then
                echo "VM.Run failed: $out" >&2
                return 255
        fi
        python3 -c '
import json, sys
d = json.loads(sys.argv[1])["data"]
sys.stdout.write(bytes(d[1]).decode(errors="replace"))
sys.stderr.write(bytes(d[2]).decode(errors="replace"))
sys.exit(d[0])' "$out"
}

# chaos_download GROUP VM NAME: the guest fetches NAME from its group's
# file server; print the SHA-256 of what it got, or why it got nothing.
# (No wget -T: the guest's busybox wget crashes with it.)
chaos_download() {
        local files6 out
        vmgr_load_expected _chaos_exp "$1"
        files6=${_chaos_exp[files6]}
        out=$(chaos_run "$1" "$2" 120 sh -c "set -o pipefail; wget -q -O - 'http://[$files6]:8080/$3' | sha256sum" 2>&1) ||
                echo "download failed: $out"
        echo "${out%% *}"
}

# True if something listens on group $1's files address, port 8080 (in the
# groups' network namespace).
chaos_fileserver_listens() {
        vmgr_load_expected _chaos_exp "$1"
        vmgr_netns_exec ss -Hltn "sport = :8080" | grep -F "[${_chaos_exp[files6]}]:8080" >/dev/null
}

# PID (in the test's PID namespace) of the live dnsmasq serving group $1's
# bridge; nothing if there is none.
chaos_dnsmasq_pid() {
        local pid
        vmgr_load_expected _chaos_exp "$1"
        for pid in $(pgrep -u "$VMGR_USER" -x dnsmasq); do
                tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -x -F -e "--interface=${_chaos_exp[bridge]}" >/dev/null &&
                        echo "$pid"
        done
        return 0
}

# PID of the QEMU of VM $2 of group $1; nothing if there is none.
chaos_qemu_pid() {
        vmgr_qemu_pids "$1" "$2" | tr '\n' ' ' | sed 's/ $//'
}

# The value of Manager property $1, as text (u 3 -> 3); a failed read if it
# cannot be read.
chaos_manager_prop() {
        local out
        if ! out=$(busctl_as_user get-property org.vmgr1 /org/vmgr1 org.vmgr1.Manager "$1" 2>&1); then
                vmgr_read_failed "cannot read Manager property $1: $out"
                return 1
        fi
        out=${out#* }
        out=${out#\"}
        echo "${out%\"}"
}

# chaos_group_works GROUP [NAME...]: print one line per thing group GROUP
# fails at: it is not running; a VM that does not get ready within 90 s; a
# VM.Run in each VM; a download by one of its VMs of each NAME from its
# file server with the SHA-256 in CHAOS_SHA[NAME] (without VMs: its file
# server does not listen). Empty: the group works.
chaos_group_works() {
        local g=$1 state vm vms path n out first=
        shift
        path=$(vmgr_group_path "$g" 2>/dev/null) || true
        if [ -z "$path" ]; then
                echo "group $g: vmgrd does not know it"
                return 0
        fi
        state=$(vmgr_group_prop "$path" State 2>/dev/null) || true
        [ "$state" = running ] || echo "group $g: state '$state', not running"
        vms=$(vmgr_leaks_group_vms "$g") || echo "group $g: cannot list its VMs"
        for vm in $vms; do
                path=$(vmgr_vm_path "$g" "$vm" 2>/dev/null) || true
                if ! out=$(busctl_as_user --timeout=95 call org.vmgr1 "$path" org.vmgr1.VM WaitReady t 90000000 2>&1); then
                        echo "VM $g/$vm: not ready within 90 s ($out); state $(vmgr_vm_prop "$path" State 2>/dev/null)," \
                                "LastError '$(vmgr_vm_prop "$path" LastError 2>/dev/null)'"
                        continue
                fi
                out=$(chaos_run "$g" "$vm" 30 echo "run-in-$vm" 2>&1) || true
                [ "$out" = "run-in-$vm" ] || echo "VM $g/$vm: VM.Run echo gave: $out"
                [ -n "$first" ] || first=$vm
        done
        for n in "$@"; do
                if [ -n "$first" ]; then
                        out=$(chaos_download "$g" "$first" "$n")
                        [ "$out" = "${CHAOS_SHA[$n]}" ] || echo "group $g: VM $first downloading $n: $out"
                elif [ -z "$vms" ]; then
                        chaos_fileserver_listens "$g" || echo "group $g: its file server does not listen"
                        break
                fi
        done
        return 0
}

# chaos_group_problems GROUP [NAME...]: chaos_group_works, and a line more
# if the check itself broke (an unset variable, say): a check that breaks
# must not pass for one that found nothing.
chaos_group_problems() {
        local out rc=0
        out=$(chaos_group_works "$@") || rc=$?
        [ -z "$out" ] || echo "$out"
        [ "$rc" -eq 0 ] || echo "checking group $1 broke off (status $rc)"
        return 0
}

# --- port forwards ------------------------------------------------------------

# chaos_echo_server GROUP VM: make sure an echo server (busybox nc -ll -e
# cat) listens on port 7000 in the guest, detached from the agent session.
chaos_echo_server() {
        chaos_run "$1" "$2" 20 sh -c \
                'pidof nc >/dev/null || setsid nc -ll -p 7000 -e cat </dev/null >/dev/null 2>&1 &' >/dev/null
}

# chaos_forward GROUP VM: forward a free port of 127.0.0.1 to port 7000 of
# the VM; print the port.
chaos_forward() {
        local out
        out=$(vmgrctl_as_user forward "$1" "$2" 7000 2>&1) || {
                echo "vmgrctl forward failed: $out" >&2
                return 1
        }
        echo "${out##*:}"
}

# The host ports of group $1's forwards (Forwards), one per line.
chaos_forward_ports() {
        local path out
        path=$(vmgr_group_path "$1") && [ -n "$path" ] || return 1
        out=$(busctl_as_user --json=short get-property org.vmgr1 "$path" org.vmgr1.Group Forwards 2>&1) || return 1
        python3 -c 'import json,sys; [print(f[4]) for f in json.loads(sys.argv[1])["data"]]' "$out"
}

# chaos_echo PORT TEXT: send TEXT to 127.0.0.1:PORT, end the sending
# side, print what comes back (or the error).
chaos_echo() {
        python3 - "$1" "$2" <<'PY' 2>&1
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
    s.sendall(sys.argv[2].encode())
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print(data.decode(errors="replace"))
except OSError as e:
    print("error", type(e).__name__, e)
PY
}

# chaos_forward_problems GROUP VM PORT TEXT: print what is wrong with the
# forward of GROUP on PORT to VM (listed in Forwards, echoes TEXT through
# the guest's echo server, started again if need be); nothing if it works.
chaos_forward_problems() {
        chaos_forward_ports "$1" 2>/dev/null | grep -x "$3" >/dev/null ||
                echo "group $1: Forwards does not list port $3 (it lists: $(chaos_forward_ports "$1" 2>&1 | paste -sd' '))"
        chaos_echo_server "$1" "$2" || echo "group $1: cannot start the echo server in VM $2"
        local out
        out=$(chaos_echo "$3" "$4")
        [ "$out" = "$4" ] || echo "group $1: the forward 127.0.0.1:$3 -> $2:7000 echoed: $out"
        return 0
}
