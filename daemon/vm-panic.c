/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A guest kernel panic. Two ways to see one:
 *   - pvpanic: every domain has the device; a kernel with its driver loaded
 *     tells QEMU, libvirt sends CRASHED/PANICKED and (on_crash destroy) ends
 *     the QEMU itself;
 *   - the console: a kernel that panics before its pvpanic driver loads (a
 *     module in Debian's kernels) only prints "Kernel panic - not syncing:
 *     MSG", then spins (panic=0) or reboots (panic=N). vmgrd reads that line
 *     and destroys the domain itself.
 * Either way the VM becomes "crashed" once per boot, with LastError "guest
 * kernel panicked: MSG" (MSG from the console when it was there), through the
 * machine's Panic operation (vm-machine.c).
 *
 * The guest writes the console, so a guest can print the line on purpose; it
 * only crashes itself that way. MSG is capped and plain ASCII
 * (lib/guest-panic.c).
 */

#include <stdio.h>

#include "group.h"
#include "grouplog.h"
#include "guest-panic.h"
#include "log.h"
#include "vm-machine.h"
#include "vm.h"

static bool vm_is_up(VM *vm) {
        return vm->state == VM_STARTING || vm->state == VM_RUNNING || vm->state == VM_READY ||
               vm->state == VM_STOPPING;
}

/* Begin the Panic operation, or have it follow the operation in flight
 * (vm_panic_op_finished()). */
static void panic_begin(VM *vm) {
        int r = vm_operation(vm, VM_OP_PANIC, 0, NULL, NULL, NULL);

        vm->panic_pending = r == -VMGR_ERR_BUSY;
        if (r < 0 && r != -VMGR_ERR_BUSY)
                log_internal(LOG_ERR, r, vm->group ? vm->group->name : NULL, vm->name,
                             "Cannot stop the VM whose guest panicked: %m");
}

/* The guest panicked (message: from its console, or NULL): once per boot. */
static void vm_guest_panicked(VM *vm, const char *message) {
        if (vm->panicked || !vm->group || !vm_is_up(vm))
                return;
        vm->panicked = true;
        if (message)
                snprintf(vm->panic_message, sizeof(vm->panic_message), "guest kernel panicked: %s", message);
        else
                snprintf(vm->panic_message, sizeof(vm->panic_message), "guest kernel panicked (pvpanic)");
        panic_begin(vm);
        if (vm->panic_pending)
                /* Said now; LastError follows when the Panic operation runs. */
                log_internal(LOG_ERR, 0, vm->group->name, vm->name, "%s; stopping it once %s is done",
                             vm->panic_message, vm_op_to_string(vm->op));
}

/* Called from within the console follower's read: nothing below frees the
 * follower (Panic's first actions change states and reply to waiters; the
 * destroy and any removal it lets go on are asynchronous). */
void vm_panic_console_line(VM *vm, const char *line, size_t len) {
        char message[VMGR_PANIC_MESSAGE_MAX + 1];

        if (vm->panicked || vmgr_kernel_panic_message(line, len, message, sizeof(message)) <= 0)
                return;
        vm_guest_panicked(vm, message);
}

void vm_panic_pvpanic(VM *vm) {
        /* The kernel printed its panic line before it told pvpanic, and QEMU
         * wrote it to the file at once: read it now, for its message. */
        console_follower_sync(vm->console);
        vm_guest_panicked(vm, NULL);
}

void vm_panic_note(VM *vm) {
        log_internal(LOG_ERR, 0, vm->group ? vm->group->name : NULL, vm->name, "VM crashed: %s",
                     vm->panic_message);
        vm_set_error(vm, vm->panic_message);
}

void vm_panic_op_finished(VM *vm) {
        if (!vm->panic_pending || vm->op != VM_OP_NONE || !vm->group)
                return;
        vm->panic_pending = false;
        if (vm->panicked && vm_is_up(vm))
                panic_begin(vm);
}
