#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The VM shorthand of "group create --vm NAME[:OPTS]" and "vm add GROUP
# NAME[:OPTS]" works offline: --print-spec prints the spec JSON vmgrctl would
# send and exits without connecting. Check the JSON for valid shorthands (with
# and without --spec), the one-sentence errors and exit statuses for invalid
# ones, and the option checks of the VM verbs.
set -euo pipefail

vmgrctl="${VMGR_BUILD_DIR:?VMGR_BUILD_DIR must point at the build directory}/client/vmgrctl"
failures=0
checks=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
err_file=$tmp/stderr

# Nothing here may reach a bus: a spec that is printed is never sent.
export DBUS_SESSION_BUS_ADDRESS="unix:path=$tmp/no-bus"
cd "$tmp"

fail() {
        echo "FAIL: $*" >&2
        failures=$((failures + 1))
}

# JSON text in one canonical line (key order kept: it is part of the output).
json_canon() {
        python3 -c 'import json, sys
print(json.dumps(json.loads(sys.stdin.read()), separators=(",", ":"), sort_keys=False))'
}

# expect_spec EXPECTED_JSON ARGS...: vmgrctl ARGS --print-spec prints that
# JSON (compared as JSON) on one line, nothing on stderr, exit status 0.
expect_spec() {
        local expected=$1 out rc=0
        shift
        checks=$((checks + 1))
        out=$("$vmgrctl" "$@" --print-spec 2>"$err_file") || rc=$?
        if [ "$rc" -ne 0 ]; then
                fail "vmgrctl $*: exit status $rc: $(cat "$err_file")"
                return
        fi
        [ -s "$err_file" ] && fail "vmgrctl $*: said '$(cat "$err_file")'"
        [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "vmgrctl $*: spec is not one line: $out"
        if [ "$(printf '%s' "$expected" | json_canon)" != "$(printf '%s' "$out" | json_canon 2>/dev/null)" ]; then
                fail "vmgrctl $*"
                echo "  expected: $expected" >&2
                echo "  got:      $out" >&2
        fi
}

# expect_error STATUS MESSAGE ARGS...: exit status and the one sentence on stderr.
expect_error() {
        local status=$1 message=$2 out err rc=0
        shift 2
        checks=$((checks + 1))
        out=$("$vmgrctl" "$@" 2>"$err_file") || rc=$?
        err=$(cat "$err_file")
        [ "$rc" -eq "$status" ] || fail "vmgrctl $*: exit status $rc, expected $status"
        [ "$err" = "vmgrctl: $message" ] || fail "vmgrctl $*: said '$err', expected 'vmgrctl: $message'"
        [ -z "$out" ] || fail "vmgrctl $*: printed '$out' on stdout"
}

# --- group create --vm ------------------------------------------------------

expect_spec '{"vms":[{"name":"a"}]}' group create g --vm a
expect_spec '{"vms":[{"name":"a"},{"name":"b","ipv4":true,"vcpus":2,"memory_mib":512}]}' \
        group create g --vm a --vm b:ipv4,vcpus=2,memory=512
# Keys in the order given; every key once.
expect_spec '{"vms":[{"name":"web.1","memory_mib":1024,"ipv4":true}]}' group create g --vm web.1:memory=1024,ipv4
expect_spec '{"vms":[{"name":"a","kernel":"/boot/vmlinuz","initrd":"/boot/initrd.img","cmdline":"console=ttyS0 quiet"}]}' \
        group create g --vm 'a:kernel=/boot/vmlinuz,initrd=/boot/initrd.img,cmdline=console=ttyS0 quiet'
# cmdline takes the rest, commas and '=' included.
expect_spec '{"vms":[{"name":"a","kernel":"/k","cmdline":"a=b,c=d,ipv4"}]}' group create g --vm 'a:kernel=/k,cmdline=a=b,c=d,ipv4'
expect_spec '{"vms":[{"name":"a","cmdline":",,"}]}' group create g --vm 'a:cmdline=,,'
expect_spec '{"vms":[{"name":"a","disk":"/images/debian.qcow2"}]}' group create g --vm a:disk=/images/debian.qcow2
# The real-guest keys: fixed values of their spec keys, and a TCP host probe.
expect_spec '{"vms":[{"name":"d","disk":"/i.qcow2","firmware":"uefi","cloud_init":{"install_agent":true},"journal":"gatewayd","ready_probe_host":{"tcp":8080}}]}' \
        group create g --vm d:disk=/i.qcow2,uefi,install-agent,journal,probe-tcp=8080
expect_spec '{"vms":[{"name":"k","kernel":"/k","agent":true,"cloud_init":true}]}' group create g --vm k:kernel=/k,agent,cloud-init
expect_spec '{"vms":[{"name":"d","agent":false}]}' group create g --vm d:no-agent
expect_spec '{"vms":[{"name":"a","warm":true},{"name":"b","warm":false}]}' group create g --vm a:warm --vm b:cold
expect_spec '{"vms":[{"name":"db","from_snapshot":"db-loaded","warm":true}]}' \
        group create g --vm db:from-snapshot=db-loaded,warm
expect_spec '{"name":"c","from_snapshot":"s1"}' vm add g c:from-snapshot=s1
# Relative paths are made absolute from the current directory.
expect_spec "{\"vms\":[{\"name\":\"a\",\"disk\":\"$tmp/d.img\",\"kernel\":\"$tmp/sub/../k\"}]}" \
        group create g --vm a:disk=d.img,kernel=sub/../k
# Numbers as JSON numbers; ranges are vmgrd's to check.
expect_spec '{"vms":[{"name":"a","vcpus":0,"memory_mib":4294967295}]}' group create g --vm a:vcpus=0,memory=4294967295
expect_spec '{"vms":[{"name":"a","vcpus":7}]}' group create g --vm a:vcpus=007
# Names are vmgrd's to check, too; they are passed on as written.
expect_spec '{"vms":[{"name":"x y"}]}' group create g --vm 'x y'
# A path with characters JSON must escape.
expect_spec '{"vms":[{"name":"a","disk":"/a \"b\"\\c"}]}' group create g --vm 'a:disk=/a "b"\c'
# Options before or after the verb.
expect_spec '{"vms":[{"name":"a"},{"name":"b"}]}' --vm a group create --vm b g

# With --spec: the --vm entries are appended to the file's "vms".
printf '{"accelerator":"tcg","vms":[{"name":"db","vcpus":2}]}' >spec.json
expect_spec '{"accelerator":"tcg","vms":[{"name":"db","vcpus":2},{"name":"a"},{"name":"b","ipv4":true}]}' \
        group create g --spec spec.json --vm a --vm b:ipv4
printf '{"accelerator":"kvm"}\n' >novms.json
expect_spec '{"accelerator":"kvm","vms":[{"name":"a"}]}' group create g --spec novms.json --vm a
printf ' \n\t' >blank.json
expect_spec '{"vms":[{"name":"a"}]}' group create g --spec blank.json --vm a
checks=$((checks + 1))
out=$(printf '{"vms":[]}' | "$vmgrctl" group create g --spec - --vm a --print-spec)
[ "$out" = '{"vms":[{"name":"a"}]}' ] || fail "--spec - with --vm: $out"

# Without --vm the file goes to vmgrd as written, even when it is not JSON.
checks=$((checks + 1))
printf '{ "vms" : [ ] ,\n  "bogus": 1 }\n' >verbatim.json
out=$("$vmgrctl" group create g --spec verbatim.json --print-spec)
[ "$out" = "$(cat verbatim.json)" ] || fail "--spec alone is not passed on verbatim: $out"
checks=$((checks + 1))
printf 'not json' >broken.json
out=$("$vmgrctl" group create g --spec broken.json --print-spec)
[ "$out" = "not json" ] || fail "--spec alone (broken) is not passed on verbatim: $out"
# Neither: the empty spec of a network-only group, printed as nothing.
checks=$((checks + 1))
out=$("$vmgrctl" group create g --print-spec)
[ -z "$out" ] || fail "group create without a spec printed '$out'"

# Invalid shorthands: usage errors (exit 2) naming the argument and key.
keys="keys: ipv4, vcpus=N, memory=MIB, kernel=PATH, initrd=PATH, disk=PATH, agent, no-agent, uefi, cloud-init, install-agent, journal, probe-tcp=PORT, warm, cold, from-snapshot=NAME, cmdline=TEXT (last)"
expect_error 2 "--vm 'b:foo': unknown key 'foo'; $keys" group create g --vm b:foo --print-spec
expect_error 2 "--vm 'b:ipv4,Vcpus=2': unknown key 'Vcpus'; $keys" group create g --vm b:ipv4,Vcpus=2
expect_error 2 "--vm 'b:memory_mib=512': unknown key 'memory_mib'; $keys" group create g --vm b:memory_mib=512
expect_error 2 "--vm 'b:ipv4=true': key 'ipv4' is a flag and takes no value" group create g --vm b:ipv4=true
expect_error 2 "--vm 'b:uefi=yes': key 'uefi' is a flag and takes no value" group create g --vm b:uefi=yes
expect_error 2 "--vm 'b:agent,no-agent': key 'no-agent' is given twice" group create g --vm b:agent,no-agent
expect_error 2 "--vm 'b:warm,cold': key 'cold' is given twice" group create g --vm b:warm,cold
expect_error 2 "--vm 'b:from-snapshot': key 'from-snapshot' needs a value (from-snapshot=...)" group create g --vm b:from-snapshot
expect_error 2 "--vm 'b:probe-tcp=http': probe-tcp must be a whole number, not 'http'" group create g --vm b:probe-tcp=http
expect_error 2 "--vm 'b:vcpus': key 'vcpus' needs a value (vcpus=...)" group create g --vm b:vcpus
expect_error 2 "--vm 'b:memory=': key 'memory' needs a value (memory=...)" group create g --vm b:memory=
expect_error 2 "--vm 'b:cmdline': key 'cmdline' needs a value (cmdline=...)" group create g --vm b:cmdline
expect_error 2 "--vm 'b:kernel=': key 'kernel' needs a value (kernel=...)" group create g --vm b:kernel=
expect_error 2 "--vm 'b:vcpus=two': vcpus must be a whole number, not 'two'" group create g --vm b:vcpus=two
expect_error 2 "--vm 'b:vcpus=-1': vcpus must be a whole number, not '-1'" group create g --vm b:vcpus=-1
expect_error 2 "--vm 'b:vcpus=+1': vcpus must be a whole number, not '+1'" group create g --vm b:vcpus=+1
expect_error 2 "--vm 'b:memory=1.5': memory must be a whole number, not '1.5'" group create g --vm b:memory=1.5
expect_error 2 "--vm 'b:memory=4294967296': memory must be a whole number, not '4294967296'" \
        group create g --vm b:memory=4294967296
expect_error 2 "--vm 'b:vcpus=2,vcpus=3': key 'vcpus' is given twice" group create g --vm b:vcpus=2,vcpus=3
expect_error 2 "--vm 'b:ipv4,,vcpus=2': empty key; write KEY[=VALUE] items separated by commas" \
        group create g --vm b:ipv4,,vcpus=2
expect_error 2 "--vm 'b:ipv4,': empty key; write KEY[=VALUE] items separated by commas" group create g --vm b:ipv4,
expect_error 2 "--vm 'b:=1': empty key; write KEY[=VALUE] items separated by commas" group create g --vm b:=1
expect_error 2 "--vm 'b:': nothing after ':'; $keys" group create g --vm b:
expect_error 2 "--vm ':ipv4': missing the VM name; write NAME[:KEY[=VALUE],...]" group create g --vm :ipv4
expect_error 2 "--vm '': missing the VM name; write NAME[:KEY[=VALUE],...]" group create g --vm ''
expect_error 2 "--vm 'a': VM name \"a\" is given twice" group create g --vm a:ipv4 --vm b --vm a
expect_error 2 "--vm 'db:ipv4': VM name \"db\" is in spec spec.json already" group create g --spec spec.json --vm db:ipv4
expect_error 2 "option --vm needs an argument; see 'vmgrctl --help'" group create g --vm
# The first bad --vm is the one reported, before anything is sent.
expect_error 2 "--vm 'b:x': unknown key 'x'; $keys" group create g --vm a --vm b:x --vm c:y

# A spec file that cannot take --vm entries: the spec is wrong (exit 1).
checks=$((checks + 1))
rc=0
"$vmgrctl" group create g --spec broken.json --vm a 2>"$err_file" || rc=$?
[ "$rc" -eq 1 ] && grep -q '^vmgrctl: invalid spec in broken.json: not valid JSON at byte [0-9]*: ' "$err_file" ||
        fail "broken spec file with --vm: exit $rc, said '$(cat "$err_file")'"
printf '[1]' >array.json
expect_error 1 "invalid spec in array.json: must be a JSON object" group create g --spec array.json --vm a
printf '{"vms":{}}' >vmsobj.json
expect_error 1 "invalid spec in vmsobj.json: vms: must be an array" group create g --spec vmsobj.json --vm a
printf '{"vms":[]} x' >trailing.json
expect_error 1 "invalid spec in trailing.json: not valid JSON at byte 11: trailing characters" \
        group create g --spec trailing.json --vm a
printf '{"vms":[' >short.json
expect_error 1 "invalid spec in short.json: not valid JSON at byte 8: unexpected end of input" \
        group create g --spec short.json --vm a
checks=$((checks + 1))
rc=0
printf '[' | "$vmgrctl" group create g --spec - --vm a 2>"$err_file" || rc=$?
[ "$rc" -eq 1 ] && grep -q '^vmgrctl: invalid spec on standard input: ' "$err_file" ||
        fail "broken spec on stdin: exit $rc, said '$(cat "$err_file")'"
expect_error 1 "cannot open spec missing.json: No such file or directory" group create g --spec missing.json --vm a

# --- vm add -----------------------------------------------------------------

expect_spec '{"name":"a"}' vm add g a
expect_spec '{"name":"a","ipv4":true,"vcpus":4}' vm add g a:ipv4,vcpus=4
printf '{"memory_mib":512,"ready_probe":["true"]}' >vm.json
expect_spec '{"memory_mib":512,"ready_probe":["true"],"name":"a","ipv4":true}' vm add g a:ipv4 --spec vm.json
# A file alone is passed on as written; vmgrd takes the name from the call.
checks=$((checks + 1))
out=$("$vmgrctl" vm add g a --spec vm.json --print-spec)
[ "$out" = "$(cat vm.json)" ] || fail "vm add --spec alone is not passed on verbatim: $out"
expect_error 2 "VM 'a:memory=256': key \"memory_mib\" is set in spec vm.json too" vm add g a:memory=256 --spec vm.json
expect_error 2 "VM 'a:nope': unknown key 'nope'; $keys" vm add g a:nope
expect_error 2 "VM ':ipv4': missing the VM name; write NAME[:KEY[=VALUE],...]" vm add g :ipv4
expect_error 1 "invalid spec in array.json: must be a JSON object" vm add g a:ipv4 --spec array.json

# --- options and arguments of the VM verbs ----------------------------------

expect_error 2 "option --vm does not apply to 'vm add'" vm add g a --vm b
expect_error 2 "option --print-spec does not apply to 'group list'" group list --print-spec
expect_error 2 "option --print-spec does not apply to 'vm start'" vm start g a --print-spec
expect_error 2 "option --spec does not apply to 'vm show'" vm show g a --spec x
expect_error 2 "option --timeout does not apply to 'vm kill'" vm kill g a --timeout 5
expect_error 2 "option --follow does not apply to 'vm show'" vm show g a -f
expect_error 2 "option --lines does not apply to 'vm list'" vm list g --lines 3
expect_error 2 "option --follow=yes takes no argument" console g a --follow=yes
expect_error 2 "invalid --timeout value '1.5': must be whole seconds (0: no limit)" vm shutdown g a --timeout 1.5
expect_error 2 "invalid --timeout value '-1': must be whole seconds (0: no limit)" vm shutdown g a --timeout=-1
expect_error 2 "invalid --lines value 'ten': must be a whole number" console g a --lines ten
expect_error 2 "invalid --lines value '': must be a whole number" console g a -n ''
expect_error 2 "missing vm command (list, show, add, remove, start, shutdown, kill, reboot or restart); see 'vmgrctl --help'" vm
expect_error 2 "unknown command 'vm stop'; see 'vmgrctl --help'" vm stop g a
expect_error 2 "missing arguments; usage: vmgrctl vm list GROUP" vm list
expect_error 2 "too many arguments; usage: vmgrctl vm show GROUP VM" vm show g a b
expect_error 2 "missing arguments; usage: vmgrctl vm add GROUP NAME[:OPTS] [--spec FILE]" vm add g
expect_error 2 "missing arguments; usage: vmgrctl vm shutdown GROUP VM [--timeout SEC]" vm shutdown g
expect_error 2 "missing arguments; usage: vmgrctl console GROUP VM [-f] [--lines N]" console g
expect_error 2 "too many arguments; usage: vmgrctl vm remove GROUP VM" vm remove g a b

# Verbs that talk to vmgrd fail with exit status 4 without a bus.
checks=$((checks + 1))
rc=0
"$vmgrctl" vm list g 2>"$err_file" || rc=$?
[ "$rc" -eq 4 ] || fail "vm list without a bus: exit status $rc, expected 4 ($(cat "$err_file"))"
checks=$((checks + 1))
rc=0
"$vmgrctl" group create g --vm a 2>"$err_file" || rc=$?
[ "$rc" -eq 4 ] || fail "group create --vm without a bus: exit status $rc, expected 4 ($(cat "$err_file"))"

checks=$((checks + 1))
grep -q '^  vm add GROUP NAME\[:OPTS\]' <<<"$("$vmgrctl" --help)" || fail "--help does not describe vm add"
checks=$((checks + 1))
! grep -q -- '--print-spec' <<<"$("$vmgrctl" --help)" || fail "--help shows the hidden --print-spec"

if [ "$failures" -gt 0 ]; then
        echo "$failures of $checks checks failed" >&2
        exit 1
fi
echo "all $checks checks passed"
