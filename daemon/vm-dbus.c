/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * org.vmgr1.VM on the bus (docs/dbus-api.md): every property and method of
 * a VM, at /org/vmgr1/group/GROUP/vm/NAME through a fallback vtable. The
 * lifecycle methods start an operation of the model (vm.c) that replies
 * when done; WaitReady waits in vm-ready.c; Run, Exec and CopyTo/CopyFrom
 * go through the guest agent (agent-session.c, process.c).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-session.h"
#include "bus-error.h"
#include "bus-util.h"
#include "group.h"
#include "guest-exec.h"
#include "time-util.h"
#include "vm.h"

/* Run's cap on each of stdout and stderr (docs/dbus-api.md). */
#define VM_RUN_OUTPUT_MAX (16U * 1024U * 1024U)

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;

        return sd_bus_message_append(reply, "s", vm_state_to_string(vm->state));
}

static int property_get_group(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;

        return sd_bus_message_append(reply, "o", vm->group ? vm->group->object_path : "/");
}

/* The derived names and addresses, chosen by property name. */
static int property_get_derived(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;
        char buf[INET6_ADDRSTRLEN + VMGR_MAC_STRLEN];

        if (streq(property, "MAC"))
                vmgr_mac_format(vm->addrs.mac, buf);
        else if (streq(property, "MAC4"))
                return sd_bus_message_append(reply, "s",
                                             vm->spec.ipv4 ? vmgr_mac_format(vm->addrs.mac4, buf) : "");
        else if (streq(property, "IPv6"))
                inet_ntop(AF_INET6, &vm->addrs.ipv6, buf, sizeof(buf));
        else if (streq(property, "Tap"))
                return sd_bus_message_append(reply, "s", vm->addrs.tap);
        else if (streq(property, "Tap4"))
                return sd_bus_message_append(reply, "s", vm->spec.ipv4 ? vm->addrs.tap4 : "");
        else
                return -EINVAL;
        return sd_bus_message_append(reply, "s", buf);
}

static int property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const char *const *s = userdata;

        return sd_bus_message_append(reply, "s", *s ?: "");
}

static int property_get_uuid(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;

        return sd_bus_message_append(reply, "s", vm->uuid);
}

/* Run an operation for a method call; the reply comes when it is done. */
static int vm_method(sd_bus_message *m, VM *vm, VMOp op, uint64_t timeout, sd_bus_error *error) {
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        if (!vm->group)
                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_VM, "VM '%s' is gone", vm->name);
        if (vm->group->state == GROUP_DELETING)
                return vmgr_bus_error_set(error, -VMGR_ERR_BUSY, "group '%s' is being deleted", vm->group->name);
        r = vm_operation(vm, op, timeout, m, NULL, NULL);
        if (r == -VMGR_ERR_BUSY)
                return vmgr_bus_error_set(error, r, "VM '%s' is busy with another operation; try again", vm->name);
        if (r == -EALREADY)
                return vmgr_bus_error_set(error, r, "VM '%s' is already running (%s); use Restart to boot it again",
                                          vm->name, vm_state_to_string(vm->state));
        if (r < 0)
                return vmgr_bus_error_set(error, r, NULL);
        return 1;
}

static int method_start(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, VM_OP_START, 0, error);
}

static int method_kill(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, VM_OP_KILL, 0, error);
}

static int method_reboot(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, VM_OP_REBOOT, 0, error);
}

static int method_restart(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return vm_method(m, userdata, VM_OP_RESTART, 0, error);
}

static int method_shutdown(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint64_t timeout;
        int r;

        r = sd_bus_message_read(m, "t", &timeout);
        if (r < 0)
                return r;
        return vm_method(m, userdata, VM_OP_SHUTDOWN, timeout_usec_or_unlimited(timeout), error);
}

static const char *vm_stage_name(unsigned s) {
        return vm_stage_to_string((VMStage) s);
}

static int property_get_timings(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;

        return bus_append_timings(reply, vm->timings, _VM_STAGE_MAX, vm_stage_name);
}

static int method_wait_ready(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;
        uint64_t timeout;
        int r;

        r = bus_method_begin(m, error, "t", &timeout);
        if (r < 0)
                return r;
        if (!vm->group)
                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_VM, "VM '%s' is gone", vm->name);
        r = vm_wait_ready(vm, m, timeout);
        if (r < 0)
                return vmgr_bus_error_set(error, r, NULL);
        return 1;
}

/* Check that the VM's agent can take a request; error set if not. */
static int vm_agent_check(VM *vm, sd_bus_error *error) {
        if (!vm->group)
                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_VM, "VM '%s' is gone", vm->name);
        if (!vmgr_vm_spec_has_agent(&vm->spec))
                return vmgr_bus_error_set(error, -VMGR_BUS_ERR_NOT_SUPPORTED, "VM '%s' has no guest agent (%s)", vm->name,
                                          vm->spec.agent == 0 ? "its spec says \"agent\": false"
                                                              : "set \"agent\": true in its spec if its image runs "
                                                                "vmgr-agent");
        if (!agent_session_is_connected(vm->agent))
                return vmgr_bus_error_set(error, -ENOTCONN,
                                          "the guest agent of VM '%s' is not connected (is the VM %s?)", vm->name,
                                          vm->state == VM_RUNNING ? "still booting" : "running");
        return 0;
}

/* ---- Run ------------------------------------------------------------------ */

typedef struct RunCall {
        VM *vm;
        sd_bus_message *call;
        AgentJob *job;
        sd_event_source *timer;
        uint64_t timeout_usec;
        bool timed_out;
} RunCall;

static void run_call_free(RunCall *c) {
        agent_job_free(c->job);
        sd_event_source_disable_unref(c->timer);
        sd_bus_message_unref(c->call);
        vm_unref(c->vm);
        free(c);
}

static void on_run_done(AgentJob *j, void *userdata) {
        RunCall *c = userdata;
        const AgentJobResult *res = agent_job_result(j);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const void *out, *err;
        size_t n_out, n_err;
        int r;

        if (c->timed_out)
                (void) vmgr_bus_reply_error(c->call, -VMGR_ERR_TIMEOUT, "the command did not finish within %.1f s",
                                            (double) c->timeout_usec / 1e6);
        else if (res->overflow)
                (void) vmgr_bus_reply_error(c->call, -VMGR_ERR_LIMIT_EXCEEDED,
                                            "the command wrote more than %u MiB to stdout or stderr (Run's cap); "
                                            "use Exec for large output",
                                            VM_RUN_OUTPUT_MAX / (1024U * 1024U));
        else if (res->error < 0)
                (void) vmgr_bus_reply_error(c->call, res->error, "%s", res->message);
        else {
                out = agent_job_output(j, AGENT_STREAM_OUT, &n_out);
                err = agent_job_output(j, AGENT_STREAM_ERR, &n_err);
                r = sd_bus_message_new_method_return(c->call, &reply);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "i", res->signal > 0 ? 128 + res->signal : res->status);
                if (r >= 0)
                        r = sd_bus_message_append_array(reply, 'y', out, n_out);
                if (r >= 0)
                        r = sd_bus_message_append_array(reply, 'y', err, n_err);
                if (r >= 0)
                        r = sd_bus_send(NULL, reply, NULL);
                if (r < 0)
                        (void) vmgr_bus_reply_error(c->call, r, "cannot send the result: %m");
        }
        c->job = NULL; /* freed below with the call */
        agent_job_free(j);
        run_call_free(c);
}

static int on_run_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        RunCall *c = userdata;

        c->timed_out = true;
        c->timer = sd_event_source_disable_unref(c->timer);
        if (agent_job_kill(c->job, SIGKILL) < 0) {
                /* Exited already, output still coming: answer now. */
                AgentJob *j = TAKE_PTR(c->job);
                on_run_done(j, c);
        }
        return 0;
}

/* VM.Snapshot(name): save the running VM as user snapshot name (vm.h's
 * vm_snapshot_create() does it and replies). The name becomes a directory
 * in the user's cache: checked here, before anything touches a path. */
static int method_snapshot(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;
        const char *name, *why;
        int r;

        r = bus_method_begin(m, error, "s", &name);
        if (r < 0)
                return r;
        if (vmgr_name_check(name, &why) < 0)
                return vmgr_bus_error_set(error, -VMGR_ERR_INVALID_NAME, "invalid snapshot name \"%s\": %s", name,
                                          why);
        if (!vm->group)
                return vmgr_bus_error_set(error, -VMGR_ERR_NO_SUCH_VM, "VM '%s' is gone", vm->name);
        if (vm->group->state == GROUP_DELETING)
                return vmgr_bus_error_set(error, -VMGR_ERR_BUSY, "group '%s' is being deleted", vm->group->name);
        r = vm_snapshot_create(vm, name, m);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot snapshot VM '%s': %m", vm->name);
        return 1; /* the reply follows once the snapshot is saved, or failed */
}

static int method_run(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;
        _cleanup_(strv_freep) char **argv = NULL;
        const void *input;
        size_t n_input;
        uint64_t timeout;
        RunCall *c;
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        r = bus_read_strv_limited(m, VMGR_AGENT_ARGS_MAX, &argv);
        if (r == -E2BIG)
                return vmgr_bus_error_set(error, -VMGR_ERR_LIMIT_EXCEEDED, "at most %d arguments",
                                          VMGR_AGENT_ARGS_MAX);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(m, 'y', &input, &n_input);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "t", &timeout);
        if (r < 0)
                return r;
        timeout = timeout_usec_or_unlimited(timeout);
        if (!argv || !argv[0] || !*argv[0])
                return vmgr_bus_error_set(error, -EINVAL, "argv must not be empty");
        r = vm_agent_check(vm, error);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->vm = vm_ref(vm);
        c->call = sd_bus_message_ref(m);
        c->timeout_usec = timeout;
        r = agent_job_new(vm->agent, AGENT_JOB_EXEC, on_run_done, c, &c->job);
        if (r >= 0)
                r = agent_job_set_input_mem(c->job, input, n_input);
        if (r >= 0)
                r = agent_job_set_output_mem(c->job, AGENT_STREAM_OUT, VM_RUN_OUTPUT_MAX);
        if (r >= 0)
                r = agent_job_set_output_mem(c->job, AGENT_STREAM_ERR, VM_RUN_OUTPUT_MAX);
        if (r >= 0 && timeout > 0)
                r = sd_event_add_time_relative(vm->group->manager->event, &c->timer, CLOCK_MONOTONIC, timeout, 0,
                                               on_run_timeout, c);
        if (r >= 0)
                r = agent_job_start_exec(c->job, argv, NULL, NULL);
        if (r < 0) {
                run_call_free(c);
                if (r == -E2BIG)
                        return vmgr_bus_error_set(error, -VMGR_ERR_LIMIT_EXCEEDED, "at most %d arguments",
                                                  VMGR_AGENT_ARGS_MAX);
                return vmgr_bus_error_set(error, r, "cannot run the command: %m");
        }
        return 1;
}

/* ---- Exec ------------------------------------------------------------------ */

static int method_exec(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;
        _cleanup_(strv_freep) char **argv = NULL, **env = NULL;
        _cleanup_free_ char *cwd = NULL;
        int fds[3];
        GuestExec *p;
        int r;

        r = bus_check_caller(m, error);
        if (r < 0)
                return r;
        r = bus_read_strv_limited(m, VMGR_AGENT_ARGS_MAX, &argv);
        if (r == -E2BIG)
                return vmgr_bus_error_set(error, -VMGR_ERR_LIMIT_EXCEEDED, "at most %d arguments and %d env entries",
                                          VMGR_AGENT_ARGS_MAX, VMGR_AGENT_ENV_MAX);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *s;

                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "env")) {
                        r = sd_bus_message_enter_container(m, 'v', "as");
                        if (r < 0)
                                return vmgr_bus_error_set(error, -EINVAL, "option env must be an array of strings");
                        env = strv_free(env); /* a second "env" replaces the first */
                        r = bus_read_strv_limited(m, VMGR_AGENT_ENV_MAX, &env);
                        if (r == -E2BIG)
                                return vmgr_bus_error_set(error, -VMGR_ERR_LIMIT_EXCEEDED,
                                                          "at most %d arguments and %d env entries",
                                                          VMGR_AGENT_ARGS_MAX, VMGR_AGENT_ENV_MAX);
                        if (r < 0)
                                return r;
                        for (char **e = env; e && *e; e++)
                                if (!strchr(*e, '=') || **e == '=')
                                        return vmgr_bus_error_set(error, -EINVAL,
                                                                  "env entry \"%s\" is not NAME=VALUE", *e);
                } else if (streq(key, "cwd")) {
                        r = sd_bus_message_enter_container(m, 'v', "s");
                        if (r < 0)
                                return vmgr_bus_error_set(error, -EINVAL, "option cwd must be a string");
                        r = sd_bus_message_read(m, "s", &s);
                        if (r < 0)
                                return r;
                        if (*s && *s != '/')
                                return vmgr_bus_error_set(error, -EINVAL, "cwd must be an absolute path");
                        free(cwd);
                        cwd = strdup(s);
                        if (!cwd)
                                return -ENOMEM;
                } else
                        return vmgr_bus_error_set(error, -EINVAL, "unknown option \"%s\" (known: env, cwd)", key);
                r = sd_bus_message_exit_container(m);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        if (!argv || !argv[0] || !*argv[0])
                return vmgr_bus_error_set(error, -EINVAL, "argv must not be empty");
        r = vm_agent_check(vm, error);
        if (r < 0)
                return r;

        r = guest_exec_start(vm, m, argv, env, cwd, fds, &p);
        if (r == -VMGR_ERR_LIMIT_EXCEEDED)
                return vmgr_bus_error_set(error, r, "VM '%s' runs %u processes for Exec already", vm->name,
                                          VM_GUEST_EXECS_MAX);
        if (r == -E2BIG)
                return vmgr_bus_error_set(error, -VMGR_ERR_LIMIT_EXCEEDED, "at most %d arguments and %d env entries",
                                          VMGR_AGENT_ARGS_MAX, VMGR_AGENT_ENV_MAX);
        if (r < 0)
                return vmgr_bus_error_set(error, r, "cannot run the command: %m");
        /* sd-bus sends duplicates; ours go now. */
        r = sd_bus_reply_method_return(m, "hhho", fds[0], fds[1], fds[2], p->object_path);
        for (int i = 0; i < 3; i++)
                safe_close(fds[i]);
        if (r < 0)
                guest_exec_remove(p);
        return r < 0 ? r : 1;
}

/* ---- CopyTo / CopyFrom ------------------------------------------------------- */

typedef struct CopyCall {
        VM *vm;
        sd_bus_message *call;           /* replied at the end (CopyTo), or at the first sign of life (CopyFrom) */
        AgentJob *job;
        int reader_fd;                  /* CopyFrom: the caller's end, until replied */
} CopyCall;

static void copy_call_free(CopyCall *c) {
        agent_job_free(c->job);
        sd_bus_message_unref(c->call);
        safe_close(c->reader_fd);
        vm_unref(c->vm);
        free(c);
}

static void copy_reply(CopyCall *c, const AgentJobResult *res) {
        if (!c->call)
                return;
        if (res && res->error < 0)
                (void) vmgr_bus_reply_error(c->call, res->error, "%s", res->message);
        else if (c->reader_fd >= 0)
                (void) sd_bus_reply_method_return(c->call, "h", c->reader_fd);
        else
                (void) sd_bus_reply_method_return(c->call, NULL);
        c->call = sd_bus_message_unref(c->call);
        c->reader_fd = safe_close(c->reader_fd);
}

static void on_copy_done(AgentJob *j, void *userdata) {
        CopyCall *c = userdata;

        copy_reply(c, agent_job_result(j));
        c->job = NULL;
        agent_job_free(j);
        copy_call_free(c);
}

/* CopyFrom: the file opened fine (data or EOF came): hand out the pipe. */
static void on_copy_progress(AgentJob *j, void *userdata) {
        copy_reply(userdata, NULL);
}

static int method_copy_to(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;
        const char *path;
        uint32_t mode;
        int fd, r;
        CopyCall *c;

        r = bus_method_begin(m, error, "hsu", &fd, &path, &mode);
        if (r < 0)
                return r;
        if (*path != '/')
                return vmgr_bus_error_set(error, -EINVAL, "the guest path must be absolute");
        if (mode > 07777)
                return vmgr_bus_error_set(error, -EINVAL, "mode %o has more than permission bits", mode);
        r = vm_agent_check(vm, error);
        if (r < 0)
                return r;
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return vmgr_bus_error_set(error, -errno, "cannot take the fd: %m");

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->reader_fd = -EBADF;
        c->vm = vm_ref(vm);
        c->call = sd_bus_message_ref(m);
        r = agent_job_new(vm->agent, AGENT_JOB_PUT, on_copy_done, c, &c->job);
        if (r < 0)
                safe_close(fd);
        else
                r = agent_job_set_fd(c->job, AGENT_STREAM_IN, fd);
        if (r >= 0)
                r = agent_job_start_file(c->job, path, mode);
        if (r < 0) {
                copy_call_free(c);
                if (r == -EISDIR)
                        return vmgr_bus_error_set(error, -EINVAL, "the fd to copy is a directory, not a file");
                if (r == -EBADF)
                        return vmgr_bus_error_set(error, -EINVAL, "the fd to copy is not open for reading");
                return vmgr_bus_error_set(error, r, "cannot copy to the guest: %m");
        }
        return 1;
}

static int method_copy_from(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        VM *vm = userdata;
        const char *path;
        int pipefd[2], r;
        CopyCall *c;

        r = bus_method_begin(m, error, "s", &path);
        if (r < 0)
                return r;
        if (*path != '/')
                return vmgr_bus_error_set(error, -EINVAL, "the guest path must be absolute");
        r = vm_agent_check(vm, error);
        if (r < 0)
                return r;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return vmgr_bus_error_set(error, -errno, "cannot make a pipe: %m");

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(pipefd[0]);
                safe_close(pipefd[1]);
                return -ENOMEM;
        }
        c->vm = vm_ref(vm);
        c->call = sd_bus_message_ref(m);
        c->reader_fd = pipefd[0];
        r = agent_job_new(vm->agent, AGENT_JOB_GET, on_copy_done, c, &c->job);
        if (r < 0)
                safe_close(pipefd[1]);
        else {
                agent_job_set_progress(c->job, on_copy_progress);
                r = agent_job_set_fd(c->job, AGENT_STREAM_OUT, pipefd[1]);
        }
        if (r >= 0)
                r = agent_job_start_file(c->job, path, 0);
        if (r < 0) {
                copy_call_free(c);
                return vmgr_bus_error_set(error, r, "cannot copy from the guest: %m");
        }
        return 1;
}

const sd_bus_vtable vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", NULL, offsetof(VM, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Group", "o", property_get_group, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MAC", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IPv6", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MAC4", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("IPv4", "s", property_get_string, offsetof(VM, ipv4), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Tap", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Tap4", "s", property_get_derived, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ConsoleLog", "s", NULL, offsetof(VM, console_log), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Vcpus", "u", NULL, offsetof(VM, spec.vcpus), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MemoryMiB", "u", NULL, offsetof(VM, spec.memory_mib), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UUID", "s", property_get_uuid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("LastError", "s", property_get_string, offsetof(VM, last_error),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Start", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_start, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Kill", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_kill, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Shutdown", SD_BUS_ARGS("t", timeout_usec), SD_BUS_NO_RESULT, method_shutdown,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reboot", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reboot,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Restart", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_restart,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("Timings", "a{st}", property_get_timings, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("WaitReady", SD_BUS_ARGS("t", timeout_usec), SD_BUS_NO_RESULT,
                                method_wait_ready, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Run", SD_BUS_ARGS("as", argv, "ay", stdin, "t", timeout_usec),
                                SD_BUS_RESULT("i", exit_status, "ay", stdout, "ay", stderr), method_run,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Exec", SD_BUS_ARGS("as", argv, "a{sv}", options),
                                SD_BUS_RESULT("h", stdin, "h", stdout, "h", stderr, "o", process), method_exec,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CopyTo", SD_BUS_ARGS("h", fd, "s", guest_path, "u", mode), SD_BUS_NO_RESULT,
                                method_copy_to, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CopyFrom", SD_BUS_ARGS("s", guest_path), SD_BUS_RESULT("h", fd),
                                method_copy_from, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Snapshot", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_snapshot,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                   sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *group = NULL, *name = NULL;
        Group *g;
        VM *vm;
        int r;

        r = sd_bus_path_decode_many(path, VMGR_GROUP_PATH_PREFIX "/%/vm/%", &group, &name);
        if (r <= 0)
                return r;
        g = manager_find_group(m, group);
        if (!g)
                return 0;
        vm = group_find_vm(g, name);
        if (!vm)
                return 0;
        *found = vm;
        return 1;
}

int vm_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l = NULL;
        size_t n = 0;

        for (Group *g = m->groups; g; g = g->next)
                for (VM *vm = g->vms; vm; vm = vm->next)
                        if (strv_push_dup(&l, &n, vm->object_path) < 0)
                                return -ENOMEM;
        *nodes = l;
        return 1;
}

int vm_emit_changed(VM *vm, const char *property, ...) {
        va_list ap;
        int r;

        if (!vm->group || !vm->group->manager)
                return 0;
        va_start(ap, property);
        r = bus_emit_changed_va(vm->group->manager->bus, vm->object_path, VMGR_VM_INTERFACE, property, ap);
        va_end(ap);
        return r;
}
