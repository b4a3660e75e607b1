/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Saving and restoring VMs: templates (warm start) and user snapshots.
 *
 * Save: the domain is paused, QEMU writes its migration stream (memory and
 * device state) into the snapshot's state file, passed to it as an fd over
 * libvirt's monitor passthrough; its disk overlays are copied while it is
 * stopped; then it runs on as itself. Restore: the clone's own domain (its
 * name, UUID, MACs, TAPs, files) is created paused with QEMU waiting for an
 * incoming migration, which reads the state file; then it is resumed.
 * libvirt's own save and restore would keep the saved domain's name and
 * UUID, so two clones of one template could not run at once.
 *
 * Which step follows which is vm-machine.c's; this file carries out the
 * FIND_SNAPSHOT, RESTORE and SAVE actions, keeps the Manager's list of
 * templates being built (so that VMs of one shape wait for a single build),
 * and sends a clone its identity through the agent.
 */

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent-session.h"
#include "bus-error.h"
#include "disk.h"
#include "fs-util.h"
#include "group.h"
#include "json-util.h"
#include "log.h"
#include "snapshot-store.h"
#include "time-util.h"
#include "vm-machine.h"
#include "vm-snapshot.h"

/* A build by another vmgrd is polled this often, and waited for this long
 * (ours too) before a VM boots cold instead. */
#define TEMPLATE_POLL_USEC (100ULL * 1000ULL)
#define TEMPLATE_WAIT_MAX_USEC (120ULL * 1000000ULL)
/* The longest a migration stream may take to write or read. */
#define MIGRATION_TIMEOUT_USEC (300ULL * 1000000ULL)
#define IDENTITY_ENTROPY_SIZE 64
#define STATE_FD_NAME "vmgr-state"

static const char *vm_group_name(VM *vm) {
        return vm->group ? vm->group->name : NULL;
}

static Manager *vm_manager_of(VM *vm) {
        Group *g = vm->group ?: vm->op_group;
        return g ? g->manager : NULL;
}

/* ---- shape ---------------------------------------------------------------- */

typedef struct FileHash {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime;
        uint8_t hash[SHA256_DIGEST_SIZE];
} FileHash;

/* Content hashes of the files shapes were made of, for the life of vmgrd:
 * a guest image of hundreds of MB is read once, not at every start. */
#define FILE_HASH_CACHE_MAX 64
static FileHash file_hashes[FILE_HASH_CACHE_MAX];
static unsigned n_file_hashes, next_file_hash;
static pthread_mutex_t file_hashes_lock = PTHREAD_MUTEX_INITIALIZER;

static bool file_hash_matches(const FileHash *h, const struct stat *st) {
        return h->dev == st->st_dev && h->ino == st->st_ino && h->size == st->st_size &&
               h->mtime.tv_sec == st->st_mtim.tv_sec && h->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

/* SHA-256 of the file's content, from the cache when the file did not
 * change. Returns 0 or -errno. */
static int file_content_hash(const char *path, uint8_t out[SHA256_DIGEST_SIZE]) {
        _cleanup_close_ int fd = -EBADF;
        struct sha256_ctx ctx;
        struct stat st, after;
        _cleanup_free_ uint8_t *buf = NULL;
        ssize_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        pthread_mutex_lock(&file_hashes_lock);
        for (unsigned i = 0; i < n_file_hashes; i++)
                if (file_hash_matches(&file_hashes[i], &st)) {
                        memcpy(out, file_hashes[i].hash, SHA256_DIGEST_SIZE);
                        pthread_mutex_unlock(&file_hashes_lock);
                        return 0;
                }
        pthread_mutex_unlock(&file_hashes_lock);

        buf = malloc(1024 * 1024);
        if (!buf)
                return -ENOMEM;
        sha256_init(&ctx);
        while ((n = read(fd, buf, 1024 * 1024)) > 0)
                sha256_update(&ctx, (size_t) n, buf);
        if (n < 0)
                return -errno;
        sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
        /* Changed while read: the hash is of no version; not cached. */
        if (fstat(fd, &after) < 0 || !(after.st_size == st.st_size && after.st_mtim.tv_sec == st.st_mtim.tv_sec &&
                                       after.st_mtim.tv_nsec == st.st_mtim.tv_nsec))
                return -EAGAIN;

        pthread_mutex_lock(&file_hashes_lock);
        FileHash *h = &file_hashes[next_file_hash];
        *h = (FileHash) { .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size, .mtime = st.st_mtim };
        memcpy(h->hash, out, SHA256_DIGEST_SIZE);
        next_file_hash = (next_file_hash + 1) % FILE_HASH_CACHE_MAX;
        if (n_file_hashes < FILE_HASH_CACHE_MAX)
                n_file_hashes++;
        pthread_mutex_unlock(&file_hashes_lock);
        return 0;
}

static void hash_string(struct sha256_ctx *ctx, const char *s) {
        /* With its NUL: "ab"+"c" and "a"+"bc" differ. */
        sha256_update(ctx, strlen(s) + 1, (const uint8_t *) s);
}

static int hash_file(struct sha256_ctx *ctx, const char *what, const char *path, char *error, size_t error_size) {
        uint8_t h[SHA256_DIGEST_SIZE];
        int r;

        r = file_content_hash(path, h);
        if (r < 0)
                return vmgr_error_printf(error, error_size, r, "cannot read %s %s: %m", what, path);
        hash_string(ctx, what);
        sha256_update(ctx, sizeof(h), h);
        return 0;
}

/* c's kernel command line with the VM's own hostname (the default
 * guest's vmgr.hostname=) made canonical, into buf. */
static void cmdline_canonical(const char *cmdline, const char *hostname, char *buf, size_t size) {
        char key[128];
        const char *p = cmdline, *hit;
        size_t off = 0;

        snprintf(key, sizeof(key), "vmgr.hostname=%s", hostname ?: "");
        buf[0] = 0;
        while (hostname && *hostname && (hit = strstr(p, key)) &&
               (hit[strlen(key)] == 0 || hit[strlen(key)] == ' ')) {
                int n = snprintf(buf + off, size - off, "%.*svmgr.hostname=shape", (int) (hit - p), p);
                if (n < 0 || (size_t) n >= size - off)
                        break;
                off += (size_t) n;
                p = hit + strlen(key);
        }
        snprintf(buf + off, size - off, "%s", p);
}

int vm_shape_compute(const VmgrDomainConfig *c, const char *hostname, const char *const *files, size_t n_files,
                     char shape[VM_SHAPE_STRLEN], char *error, size_t error_size) {
        const char *extra[VMGR_SPEC_MAX_EXTRA_DISKS];
        char cmdline[4200];
        _cleanup_free_ char *xml = NULL;
        VmgrDomainConfig canon = *c;
        uint8_t digest[SHA256_DIGEST_SIZE];
        struct sha256_ctx ctx;
        char qemu[128];
        struct stat st;
        int r;

        /* The names and paths of a VM are not its shape; whether there is
         * such a file, and the contents of the ones it boots, are. */
        canon.uid = 0;
        canon.group = "shape";
        canon.vm = "shape";
        canon.kernel = c->kernel ? "/shape/kernel" : NULL;
        canon.initrd = c->initrd ? "/shape/initrd" : NULL;
        if (c->cmdline) {
                cmdline_canonical(c->cmdline, hostname, cmdline, sizeof(cmdline));
                canon.cmdline = cmdline;
        }
        canon.boot_disk = c->boot_disk ? "/shape/disk.qcow2" : NULL;
        canon.cloud_init_seed = c->cloud_init_seed ? "/shape/seed.img" : NULL;
        canon.console_log = "/shape/console.log";
        canon.agent_socket = "/shape/agent.sock";
        canon.nvram = c->nvram ? "/shape/nvram.fd" : NULL;
        canon.incoming_defer = false;
        for (size_t i = 0; i < c->n_extra_disks && i < VMGR_SPEC_MAX_EXTRA_DISKS; i++)
                extra[i] = "/shape/extra.qcow2";
        canon.extra_disks = extra;
        r = vmgr_domain_xml(&canon, &xml);
        if (r < 0)
                return vmgr_error_printf(error, error_size, r, "cannot build the domain XML: %m");

        sha256_init(&ctx);
        hash_string(&ctx, "vmgr-shape-1");
        hash_string(&ctx, xml);
        if (c->kernel && (r = hash_file(&ctx, "kernel", c->kernel, error, error_size)) < 0)
                return r;
        if (c->initrd && (r = hash_file(&ctx, "initrd", c->initrd, error, error_size)) < 0)
                return r;
        for (size_t i = 0; i < n_files; i++)
                if (files[i] && (r = hash_file(&ctx, "disk", files[i], error, error_size)) < 0)
                        return r;
        /* Another QEMU may not read this one's stream: its path, size and
         * time stand for its version. */
        if (stat(c->emulator, &st) < 0)
                return vmgr_error_printf(error, error_size, -errno, "cannot find %s: %m", c->emulator);
        snprintf(qemu, sizeof(qemu), "%llu %lld.%09ld", (unsigned long long) st.st_size, (long long) st.st_mtim.tv_sec,
                 st.st_mtim.tv_nsec);
        hash_string(&ctx, c->emulator);
        hash_string(&ctx, qemu);
        sha256_digest(&ctx, sizeof(digest), digest);
        for (size_t i = 0; i < sizeof(digest); i++)
                snprintf(shape + 2 * i, 3, "%02x", digest[i]);
        return 0;
}

bool vm_warm_wanted(VM *vm) {
        Manager *m = vm_manager_of(vm);

        if (vm->ever_started || !m || !m->snapshots)
                return false;
        /* A clone never prints its boot again: a ready_console line would
         * not come. */
        return vm->spec.from_snapshot ||
               (m->config.warm_start && vmgr_vm_spec_wants_warm(&vm->spec) && !vm->spec.ready_console);
}

/* ---- QEMU's monitor, on a pool thread ------------------------------------- */

/* Run one QMP command (JSON text), passing fd if >= 0. Returns 0 and the
 * reply's "return" member in *ret (may be NULL), or -EIO with error set. */
static int qmp(virDomainPtr dom, const char *command, int fd, json_object **ret, char *error, size_t error_size) {
        _cleanup_free_ char *result = NULL;
        _cleanup_json_ json_object *reply = NULL;
        json_object *e, *desc, *value;
        int files[1] = { fd };

        if (virDomainQemuMonitorCommandWithFiles(dom, command, fd >= 0 ? 1 : 0, fd >= 0 ? files : NULL, NULL, NULL,
                                                 &result, 0) < 0) {
                snprintf(error, error_size, "%s", virt_last_error());
                return -EIO;
        }
        reply = json_tokener_parse(result ?: "");
        if (!reply) {
                snprintf(error, error_size, "QEMU answered %.100s with what is not JSON", command);
                return -EIO;
        }
        if (json_object_object_get_ex(reply, "error", &e)) {
                snprintf(error, error_size, "QEMU: %s",
                         json_object_object_get_ex(e, "desc", &desc) ? json_object_get_string(desc) : "error");
                return -EIO;
        }
        if (ret) {
                *ret = json_object_object_get_ex(reply, "return", &value) ? json_object_get(value) : NULL;
        }
        return 0;
}

/* Whether query-migrate's status says the stream still runs. */
static bool migration_is_running(const char *status) {
        static const char *const running[] = { "setup",  "active",      "pre-switchover",
                                               "device", "wait-unplug", "cancelling" };

        for (size_t i = 0; i < ELEMENTSOF(running); i++)
                if (streq(status, running[i]))
                        return true;
        return false;
}

/* Poll query-migrate until the stream is done: completed, or with
 * !must_complete also failed, cancelled or never begun. Returns 0, or
 * -EIO (error set) if it must complete and did not, or -ETIMEDOUT. */
static int migration_wait(virDomainPtr dom, uint64_t timeout_usec, bool must_complete, char *error,
                          size_t error_size) {
        uint64_t deadline = now_monotonic_usec() + timeout_usec;
        int r;

        for (;;) {
                _cleanup_json_ json_object *info = NULL;
                json_object *status, *why;
                const char *s;

                r = qmp(dom, "{\"execute\":\"query-migrate\"}", -EBADF, &info, error, error_size);
                if (r < 0)
                        return r;
                s = info && json_object_object_get_ex(info, "status", &status) ? json_object_get_string(status) : "";
                if (streq(s, "completed") || (!must_complete && !migration_is_running(s)))
                        return 0;
                if (streq(s, "failed") || streq(s, "cancelled")) {
                        snprintf(error, error_size, "QEMU's migration stream %s: %s", s,
                                 json_object_object_get_ex(info, "error-desc", &why) ? json_object_get_string(why)
                                                                                     : "no reason given");
                        return -EIO;
                }
                if (now_monotonic_usec() > deadline) {
                        snprintf(error, error_size, "QEMU's migration stream did not finish in time");
                        return -ETIMEDOUT;
                }
                usleep(5000);
        }
}

/* QEMU reports the stream "completed" a moment before its run state leaves
 * finish-migrate, and refuses "cont" until it has ("Migration is not
 * finalized yet"): poll query-status until then. Returns 0, or -errno
 * (error set). */
static int migration_finalized_wait(virDomainPtr dom, char *error, size_t error_size) {
        uint64_t deadline = now_monotonic_usec() + MIGRATION_TIMEOUT_USEC;
        int r;

        for (;;) {
                _cleanup_json_ json_object *info = NULL;
                json_object *status;

                r = qmp(dom, "{\"execute\":\"query-status\"}", -EBADF, &info, error, error_size);
                if (r < 0)
                        return r;
                if (!info || !json_object_object_get_ex(info, "status", &status) ||
                    !streq(json_object_get_string(status), "finish-migrate"))
                        return 0;
                if (now_monotonic_usec() > deadline) {
                        snprintf(error, error_size, "QEMU did not finalize its migration stream in time");
                        return -ETIMEDOUT;
                }
                usleep(5000);
        }
}

/* How long a new vmgrd lets a save it found cut short take to stop. */
#define INTERRUPTED_SAVE_TIMEOUT_USEC (20ULL * 1000000ULL)

/* A save cut short: let its stream end (it goes to a build directory the
 * new vmgrd's store has removed already, through the fd QEMU holds), then
 * resume the guest, as a save that completed does. Returns 0, or -errno
 * (error set). */
static int save_interrupted_resume(virDomainPtr dom, char *error, size_t error_size) {
        int r;

        r = migration_wait(dom, INTERRUPTED_SAVE_TIMEOUT_USEC, false, error, error_size);
        if (r < 0)
                return r;
        r = migration_finalized_wait(dom, error, error_size);
        if (r < 0)
                return r;
        if (virDomainResume(dom) < 0) {
                snprintf(error, error_size, "%s", virt_last_error());
                return -EIO;
        }
        return 0;
}

int vm_snapshot_paused_mend(virDomainPtr dom, bool *destroyed, char *error, size_t error_size) {
        _cleanup_json_ json_object *status = NULL, *migration = NULL;
        _cleanup_free_ char *xml = NULL;
        json_object *v;
        bool restore;
        int r;

        *destroyed = false;
        r = qmp(dom, "{\"execute\":\"query-status\"}", -EBADF, &status, error, error_size);
        if (r >= 0)
                r = qmp(dom, "{\"execute\":\"query-migrate\"}", -EBADF, &migration, error, error_size);
        if (r < 0)
                return r;
        /* A restore that had not loaded the stream yet: "inmigrate". One that
         * had, but was not resumed: started with -incoming (only clones
         * are), and no outgoing stream (query-migrate shows an outgoing
         * one's figures, "total-time" and "ram", once it began; the
         * incoming one is only a status). A save of a clone paused a moment
         * before its stream began looks the same, and goes too. */
        restore = (status && json_object_object_get_ex(status, "status", &v) &&
                   streq(json_object_get_string(v), "inmigrate"));
        if (!restore && !(migration && (json_object_object_get_ex(migration, "total-time", &v) ||
                                        json_object_object_get_ex(migration, "ram", &v)))) {
                xml = virDomainGetXMLDesc(dom, 0);
                restore = xml && strstr(xml, "<qemu:arg value='-incoming'/>");
        }
        if (!restore)
                return save_interrupted_resume(dom, error, error_size);
        if (virDomainDestroy(dom) < 0) {
                snprintf(error, error_size, "cannot end the domain of a restore cut short: %s", virt_last_error());
                return -EIO;
        }
        *destroyed = true;
        return 0;
}

/* ---- finding the snapshot to restore (pool thread) ------------------------ */

typedef enum FindResult {
        FIND_FOUND,             /* linked: restore */
        FIND_BUILD,             /* none: this VM builds it (boots cold) */
        FIND_BUILDING,          /* being built by another: wait */
        FIND_COLD,              /* none, and no build: boot cold */
} FindResult;

typedef struct FindJob {
        VM *vm;                 /* a reference; only fields fixed while the op runs are read */
        uint64_t seq;
        SnapshotStore *store;
        SnapshotKind kind;
        char name[VMGR_NAME_MAX + 2];
        char shape[VM_SHAPE_STRLEN];    /* the VM's: a user snapshot must have it too */
        bool may_build;
        char *dir;
        char *disks[SNAPSHOT_DISKS_MAX]; /* the clone's overlays, in the domain's order */
        size_t n_disks;
        FindResult result;
        int state_fd;
        SnapshotBuild *build;
        char error[512];
} FindJob;

static void find_job_free(FindJob *j) {
        vm_unref(j->vm);
        free(j->dir);
        for (size_t i = 0; i < j->n_disks; i++)
                free(j->disks[i]);
        safe_close(j->state_fd);
        snapshot_build_abort(j->build);
        free(j);
}

/* The clone's overlays, backed by the snapshot's frozen disks (linked into
 * its directory). Returns 0 or -errno. */
static int clone_overlays(FindJob *j, const SnapshotClone *c) {
        int r;

        if (c->meta.n_disks != j->n_disks) {
                snprintf(j->error, sizeof(j->error), "the snapshot has %u disks, the VM %zu", c->meta.n_disks,
                         j->n_disks);
                return -EINVAL;
        }
        for (size_t i = 0; i < j->n_disks; i++) {
                /* The cold boot's overlay made by prepare goes: the clone's disk
                 * is the snapshot's. */
                if (unlink(j->disks[i]) < 0 && errno != ENOENT)
                        return vmgr_error_printf(j->error, sizeof(j->error), -errno, "cannot remove %s: %m",
                                                 j->disks[i]);
                r = disk_overlay_create(c->disks[i], VMGR_DISK_FORMAT_QCOW2, j->disks[i], j->error,
                                        sizeof(j->error));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int find_work(void *userdata) {
        FindJob *j = userdata;
        SnapshotClone c = { .state_fd = -EBADF };
        int r;

        for (unsigned attempt = 0; attempt < 2; attempt++) {
                r = snapshot_store_clone(j->store, j->kind, j->name, j->dir, &c, j->error, sizeof(j->error));
                if (r >= 0 && !streq(c.meta.shape, j->shape)) {
                        /* Its memory holds a kernel, devices and disks this VM
                         * would not have: QEMU would refuse it, or worse. */
                        snprintf(j->error, sizeof(j->error),
                                 "it was made of another guest image, QEMU or device layout than this VM would have now");
                        snapshot_clone_done(&c);
                        return -ESTALE;
                }
                if (r >= 0) {
                        r = clone_overlays(j, &c);
                        if (r >= 0) {
                                j->state_fd = TAKE_FD(c.state_fd);
                                j->result = FIND_FOUND;
                        }
                        snapshot_clone_done(&c);
                        return r;
                }
                if (r != -ENOENT || j->kind != SNAPSHOT_TEMPLATE)
                        return r;
                if (!j->may_build) {
                        j->result = snapshot_store_template_building(j->store, j->name) ? FIND_BUILDING : FIND_COLD;
                        return 0;
                }
                r = snapshot_build_begin(j->store, SNAPSHOT_TEMPLATE, j->name, &j->build, j->error, sizeof(j->error));
                if (r >= 0) {
                        j->result = FIND_BUILD;
                        return 0;
                }
                if (r == -EBUSY) {
                        j->result = FIND_BUILDING;
                        return 0;
                }
                if (r != -EEXIST)
                        return r;
                /* Built meanwhile: take it. */
        }
        j->result = FIND_COLD;
        return 0;
}

struct TemplateWait {
        TemplateWait *next;
        char shape[VM_SHAPE_STRLEN];
        VM *builder;            /* no reference: it leaves the list before it goes */
        VM **waiters;           /* references */
        size_t n_waiters;
};

static TemplateWait *template_wait_find(Manager *m, const char *shape) {
        for (TemplateWait *w = m->template_waits; w; w = w->next)
                if (streq(w->shape, shape))
                        return w;
        return NULL;
}

static void find_submit(VM *vm, bool may_build);
static int on_template_poll(sd_event_source *s, uint64_t usec, void *userdata);

/* Still at START_TEMPLATE of the op that began waiting? */
static bool vm_waits_for_template(VM *vm) {
        return (vm->op == VM_OP_START || vm->op == VM_OP_RESTART) && vm->op_step == START_TEMPLATE &&
               vm->op_seq == vm->template_wait_seq;
}

/* Wait for a template another VM or vmgrd builds: polled, and given up
 * after TEMPLATE_WAIT_MAX_USEC. */
static void template_wait_arm(VM *vm, uint64_t after) {
        Manager *m = vm_manager_of(vm);

        vm->template_timer = sd_event_source_disable_unref(vm->template_timer);
        if (!m || sd_event_add_time_relative(m->event, &vm->template_timer, CLOCK_MONOTONIC, after, 0,
                                             on_template_poll, vm) < 0)
                vm_op_cold(vm, vm->op_seq);
}

/* Join the VMs waiting for this vmgrd's build of shape. */
static int template_wait_join(TemplateWait *w, VM *vm) {
        VM **a = reallocarray(w->waiters, w->n_waiters + 1, sizeof(VM *));

        if (!a)
                return -ENOMEM;
        w->waiters = a;
        w->waiters[w->n_waiters++] = vm_ref(vm);
        /* The build's end wakes it; this timer only bounds the wait. */
        template_wait_arm(vm, TEMPLATE_WAIT_MAX_USEC);
        return 0;
}

static void template_wait_leave(Manager *m, VM *vm) {
        for (TemplateWait *w = m ? m->template_waits : NULL; w; w = w->next)
                for (size_t i = 0; i < w->n_waiters; i++)
                        if (w->waiters[i] == vm) {
                                w->waiters[i] = w->waiters[--w->n_waiters];
                                vm_unref(vm);
                                return;
                        }
}

static int on_template_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        VM *vm = userdata;
        Manager *m = vm_manager_of(vm);

        vm->template_timer = sd_event_source_disable_unref(vm->template_timer);
        if (!vm_waits_for_template(vm))
                return 0;
        if (now_monotonic_usec() - vm->template_wait_usec >= TEMPLATE_WAIT_MAX_USEC) {
                log_internal(LOG_WARNING, 0, vm_group_name(vm), vm->name,
                             "The template of this VM's shape was not built in time; booting cold");
                template_wait_leave(m, vm);
                vm_op_cold(vm, vm->op_seq);
                return 0;
        }
        /* Being built by this vmgrd after all (its builder's answer came
         * after ours): wait for its end. */
        TemplateWait *w = m ? template_wait_find(m, vm->shape) : NULL;
        if (w && w->builder != vm) {
                if (template_wait_join(w, vm) < 0)
                        vm_op_cold(vm, vm->op_seq);
                return 0;
        }
        find_submit(vm, false);
        return 0;
}

/* The build of shape by this vmgrd ended (ok: the template is there): its
 * waiters restore it or boot cold. */
static void template_wait_end(Manager *m, const char *shape, bool ok) {
        TemplateWait **p, *w;

        for (p = &m->template_waits; *p && !streq((*p)->shape, shape); p = &(*p)->next)
                ;
        w = *p;
        if (!w)
                return;
        *p = w->next;
        for (size_t i = 0; i < w->n_waiters; i++) {
                VM *vm = w->waiters[i];

                vm->template_timer = sd_event_source_disable_unref(vm->template_timer);
                if (!vm_waits_for_template(vm))
                        ;
                else if (vm->remove_requested || !vm->group)
                        /* Its group is deleted (the builder's often is too): no boot for nothing. */
                        vm_op_fail(vm, vm->op_seq, -ECANCELED, "VM '%s' is being removed", vm->name);
                else if (ok)
                        find_submit(vm, false);
                else
                        vm_op_cold(vm, vm->op_seq);
                vm_unref(vm);
        }
        free(w->waiters);
        free(w);
}

void vm_snapshot_manager_done(Manager *m) {
        /* vmgrd exits: nobody is woken, the references go. */
        while (m->template_waits) {
                TemplateWait *w = m->template_waits;

                m->template_waits = w->next;
                for (size_t i = 0; i < w->n_waiters; i++) {
                        w->waiters[i]->template_timer = sd_event_source_disable_unref(w->waiters[i]->template_timer);
                        vm_unref(w->waiters[i]);
                }
                free(w->waiters);
                free(w);
        }
}

static void find_done(int result, void *userdata) {
        FindJob *j = userdata;
        VM *vm = j->vm;
        Manager *m = vm_manager_of(vm);
        TemplateWait *w;

        if (j->seq != vm->op_seq || !m) {
                find_job_free(j);
                return;
        }
        if (result < 0) {
                if (j->kind == SNAPSHOT_USER)
                        vm_op_fail(vm, j->seq, result == -ENOENT ? -VMGR_ERR_NO_SUCH_SNAPSHOT : result,
                                   "cannot restore snapshot '%s': %s", j->name, j->error);
                else {
                        log_internal(LOG_WARNING, result, vm_group_name(vm), vm->name,
                                     "Cannot use the template of this VM's shape (%s); booting cold", j->error);
                        vm_op_cold(vm, j->seq);
                }
                find_job_free(j);
                return;
        }
        switch (j->result) {
        case FIND_FOUND:
                safe_close(vm->restore_fd);
                vm->restore_fd = TAKE_FD(j->state_fd);
                vm->restored = true;
                vm_op_step_done(vm, j->seq);
                break;
        case FIND_BUILD:
                w = calloc(1, sizeof(*w));
                if (!w) {
                        vm_op_cold(vm, j->seq);
                        break;
                }
                snprintf(w->shape, sizeof(w->shape), "%s", vm->shape);
                w->builder = vm;
                w->next = m->template_waits;
                m->template_waits = w;
                snapshot_build_abort(vm->template_build);
                vm->template_build = TAKE_PTR(j->build);
                log_internal(LOG_INFO, 0, vm_group_name(vm), vm->name,
                             "No template of this VM's shape yet: booting cold, and saving it as the template once ready");
                vm_op_cold(vm, j->seq);
                break;
        case FIND_BUILDING:
                w = template_wait_find(m, vm->shape);
                if (w && w->builder != vm && template_wait_join(w, vm) >= 0)
                        break;
                template_wait_arm(vm, TEMPLATE_POLL_USEC);
                break;
        case FIND_COLD:
                vm_op_cold(vm, j->seq);
                break;
        }
        find_job_free(j);
}

static void find_submit(VM *vm, bool may_build) {
        Manager *m = vm_manager_of(vm);
        const VmgrVMSpec *s = &vm->spec;
        FindJob *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j) {
                vm_op_cold(vm, vm->op_seq);
                return;
        }
        j->state_fd = -EBADF;
        j->vm = vm_ref(vm);
        j->seq = vm->op_seq;
        j->store = m->snapshots;
        j->kind = s->from_snapshot ? SNAPSHOT_USER : SNAPSHOT_TEMPLATE;
        snprintf(j->name, sizeof(j->name), "%s", s->from_snapshot ?: vm->shape);
        snprintf(j->shape, sizeof(j->shape), "%s", vm->shape);
        j->may_build = may_build && !s->from_snapshot;
        j->dir = strdup(vm->dir);
        r = j->dir ? 0 : -ENOMEM;
        if (r >= 0 && s->disk.path)
                r = asprintf(&j->disks[j->n_disks++], "%s/disk.qcow2", vm->dir) < 0 ? -ENOMEM : 0;
        for (size_t i = 0; r >= 0 && i < s->n_extra_disks; i++)
                r = asprintf(&j->disks[j->n_disks++], "%s/extra%zu.qcow2", vm->dir, i) < 0 ? -ENOMEM : 0;
        if (r >= 0)
                r = worker_submit(m->workers, find_work, find_done, j);
        if (r < 0) {
                find_job_free(j);
                vm_op_cold(vm, vm->op_seq);
        }
}

void vm_snapshot_find(VM *vm) {
        Manager *m = vm_manager_of(vm);
        TemplateWait *w;

        vm->template_wait_seq = vm->op_seq;
        vm->template_wait_usec = now_monotonic_usec();
        if (!vm->spec.from_snapshot) {
                /* No shape (it could not be computed) or no clone XML: cold. */
                if (!*vm->shape || !vm->restore_xml || !m) {
                        vm_op_cold(vm, vm->op_seq);
                        return;
                }
                /* Being built here: wait for that build rather than ask the store. */
                w = template_wait_find(m, vm->shape);
                if (w && w->builder != vm) {
                        if (template_wait_join(w, vm) < 0)
                                vm_op_cold(vm, vm->op_seq);
                        return;
                }
        } else if (!vm->restore_xml) {
                vm_op_fail(vm, vm->op_seq, -EINVAL, "cannot restore snapshot '%s': no domain XML for it",
                           vm->spec.from_snapshot);
                return;
        }
        find_submit(vm, true);
}

/* ---- restoring (libvirt, pool thread) ------------------------------------ */

typedef struct RestoreJob {
        VM *vm;
        uint64_t seq;
        char *xml;
        int state_fd;
        unsigned n_nics;
        char error[512];
} RestoreJob;

static void restore_job_free(RestoreJob *j) {
        vm_unref(j->vm);
        free(j->xml);
        safe_close(j->state_fd);
        free(j);
}

static int restore_work(virConnectPtr conn, void *userdata) {
        RestoreJob *j = userdata;
        virDomainPtr dom;
        int r;

        /* Paused, with QEMU waiting for the stream ("-incoming defer"). */
        dom = virDomainCreateXML(conn, j->xml, VIR_DOMAIN_START_PAUSED);
        if (!dom) {
                snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                return -EIO;
        }
        r = qmp(dom, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"" STATE_FD_NAME "\"}}", j->state_fd, NULL,
                j->error, sizeof(j->error));
        if (r >= 0)
                r = qmp(dom,
                        "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:" STATE_FD_NAME "\"}}",
                        -EBADF, NULL, j->error, sizeof(j->error));
        if (r >= 0)
                r = migration_wait(dom, MIGRATION_TIMEOUT_USEC, true, j->error, sizeof(j->error));
        /* Loading virtio-net's state took the template's link state over.
         * Until the agent has given the guest its own MACs, whatever it sends
         * carries the template's, and the group's bridge would learn them on
         * this clone's TAP, taking the template VM's traffic (and a clone in
         * the template VM's group would take it from it): the links go down
         * on QEMU's side (the guest does not see it: no link status feature;
         * what it sends meanwhile is dropped) and up again once the agent has
         * applied IDENTITY (link_work()). */
        for (unsigned i = 0; r >= 0 && i < j->n_nics; i++) {
                char command[128];

                snprintf(command, sizeof(command),
                         "{\"execute\":\"set_link\",\"arguments\":{\"name\":\"net%u\",\"up\":false}}", i);
                r = qmp(dom, command, -EBADF, NULL, j->error, sizeof(j->error));
        }
        if (r >= 0 && virDomainResume(dom) < 0) {
                snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                r = -EIO;
        }
        if (r < 0)
                (void) virDomainDestroy(dom);
        virDomainFree(dom);
        return r;
}

static void restore_done(int result, void *userdata) {
        RestoreJob *j = userdata;
        VM *vm = j->vm;

        if (result < 0 && j->seq == vm->op_seq) {
                log_internal(LOG_WARNING, result, vm_group_name(vm), vm->name,
                             "Cannot restore the VM from its snapshot (%s); booting cold", j->error);
                vm->restored = false;
                if (vm->spec.from_snapshot)
                        vm_op_fail(vm, j->seq, -EIO, "cannot restore snapshot '%s': %s", vm->spec.from_snapshot,
                                   j->error);
                else
                        vm_op_cold(vm, j->seq);
        } else if (result >= 0) {
                if (j->seq == vm->op_seq && vm->start_usec > 0 && vm->timings[VM_STAGE_RESTORED] == VM_STAGE_NOT_YET) {
                        vm->timings[VM_STAGE_RESTORED] = now_monotonic_usec() - vm->start_usec;
                        log_internal(LOG_INFO, 0, vm_group_name(vm), vm->name, "restored after %.3f s",
                                     (double) vm->timings[VM_STAGE_RESTORED] / 1e6);
                        (void) vm_emit_changed(vm, "Timings", NULL);
                }
                vm_op_step_done(vm, j->seq);
                vm_ready_evaluate(vm);
        }
        restore_job_free(j);
}

void vm_snapshot_restore(VM *vm) {
        Manager *m = vm_manager_of(vm);
        RestoreJob *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j) {
                vm_op_cold(vm, vm->op_seq);
                return;
        }
        j->vm = vm_ref(vm);
        j->seq = vm->op_seq;
        j->state_fd = TAKE_FD(vm->restore_fd);
        j->n_nics = vm->spec.ipv4 ? 2 : 1;
        vm->links_up = false;
        j->xml = vm->restore_xml ? strdup(vm->restore_xml) : NULL;
        r = j->xml && j->state_fd >= 0 ? virt_call(m->virt, restore_work, restore_done, j) : -ENOMEM;
        if (r < 0) {
                restore_job_free(j);
                vm->restored = false;
                vm_op_cold(vm, vm->op_seq);
        }
}

/* ---- saving (libvirt, pool thread) --------------------------------------- */

typedef struct SaveJob {
        VM *vm;
        uint64_t seq;
        SnapshotStore *store;
        SnapshotBuild *build;   /* the template's, begun when its VM booted; else begun here */
        char *domain;
        char *disks[SNAPSHOT_DISKS_MAX];
        size_t n_disks;
        SnapshotMeta meta;      /* kind, name and what the commit writes */
        char error[512];
} SaveJob;

static void save_job_free(SaveJob *j) {
        vm_unref(j->vm);
        snapshot_build_abort(j->build);
        free(j->domain);
        for (size_t i = 0; i < j->n_disks; i++)
                free(j->disks[i]);
        snapshot_meta_done(&j->meta);
        free(j);
}

/* Stopped: the stream, then the disks, then it runs on. Returns 0 or -errno. */
static int save_stopped(virDomainPtr dom, SaveJob *j) {
        int r;

        /* Unthrottled: QEMU's default bandwidth would take seconds for a
         * few hundred MB. */
        r = qmp(dom, "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"max-bandwidth\":1000000000000}}",
                -EBADF, NULL, j->error, sizeof(j->error));
        if (r >= 0)
                r = qmp(dom, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"" STATE_FD_NAME "\"}}",
                        snapshot_build_state_fd(j->build), NULL, j->error, sizeof(j->error));
        if (r >= 0)
                r = qmp(dom, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:" STATE_FD_NAME "\"}}", -EBADF,
                        NULL, j->error, sizeof(j->error));
        if (r >= 0)
                r = migration_wait(dom, MIGRATION_TIMEOUT_USEC, true, j->error, sizeof(j->error));
        /* QEMU flushed and let go of its disks when the stream completed. */
        for (size_t i = 0; r >= 0 && i < j->n_disks; i++)
                r = snapshot_build_add_disk(j->build, (unsigned) i, j->disks[i], j->error, sizeof(j->error));
        return r;
}

static int save_work(virConnectPtr conn, void *userdata) {
        SaveJob *j = userdata;
        char resume_error[256] = "";
        virDomainPtr dom;
        int r, k;

        if (!j->build) {
                r = snapshot_build_begin(j->store, j->meta.kind, j->meta.name, &j->build, j->error,
                                         sizeof(j->error));
                if (r < 0)
                        return r;
        }
        dom = virDomainLookupByName(conn, j->domain);
        if (!dom) {
                snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                return -ESRCH;
        }
        if (virDomainSuspend(dom) < 0) {
                snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                virDomainFree(dom);
                return -EIO;
        }
        r = save_stopped(dom, j);
        /* It runs on as itself, whatever became of the snapshot, once
         * QEMU lets it. */
        k = migration_finalized_wait(dom, resume_error, sizeof(resume_error));
        if (k >= 0 && virDomainResume(dom) < 0) {
                snprintf(resume_error, sizeof(resume_error), "%s", virt_last_error());
                k = -EIO;
        }
        if (k < 0 && r >= 0) {
                snprintf(j->error, sizeof(j->error), "cannot resume the VM: %s", resume_error);
                r = k;
        }
        virDomainFree(dom);
        if (r < 0)
                return r;
        return snapshot_build_commit(TAKE_PTR(j->build), &j->meta, j->error, sizeof(j->error));
}

static void save_done(int result, void *userdata) {
        SaveJob *j = userdata;
        VM *vm = j->vm;

        if (result < 0) {
                if (result == -EEXIST)
                        vm_op_fail(vm, j->seq, -VMGR_ERR_SNAPSHOT_EXISTS, "snapshot '%s' exists already", j->meta.name);
                else
                        vm_op_fail(vm, j->seq, result, "cannot save VM '%s': %s", vm->name, j->error);
        } else {
                log_internal(LOG_INFO, 0, vm_group_name(vm), vm->name, "Saved as %s %s",
                             j->meta.kind == SNAPSHOT_TEMPLATE ? "the template of shape" : "snapshot",
                             j->meta.name);
                vm_op_step_done(vm, j->seq);
        }
        save_job_free(j);
}

void vm_snapshot_save(VM *vm) {
        Manager *m = vm_manager_of(vm);
        const VmgrVMSpec *s = &vm->spec;
        char source[2 * VMGR_NAME_MAX + 2];
        SaveJob *j;
        int r = 0;

        j = calloc(1, sizeof(*j));
        if (!j) {
                vm_op_fail(vm, vm->op_seq, -ENOMEM, "out of memory");
                return;
        }
        j->vm = vm_ref(vm);
        j->seq = vm->op_seq;
        j->store = m->snapshots;
        if (vm->snapshot_name) {
                j->meta.kind = SNAPSHOT_USER;
                snprintf(j->meta.name, sizeof(j->meta.name), "%s", vm->snapshot_name);
        } else {
                j->meta.kind = SNAPSHOT_TEMPLATE;
                snprintf(j->meta.name, sizeof(j->meta.name), "%s", vm->shape);
                j->build = TAKE_PTR(vm->template_build);
                if (!j->build)
                        r = -ENOENT;
        }
        snprintf(j->meta.shape, sizeof(j->meta.shape), "%s", vm->shape);
        snprintf(source, sizeof(source), "%s/%s", vm_group_name(vm) ?: "", vm->name);
        memcpy(j->meta.macs[0], vm->addrs.mac, 6);
        memcpy(j->meta.macs[1], vm->addrs.mac4, 6);
        j->meta.spec_json = strdup(vm->spec_json ?: "{}");
        j->meta.source = strdup(source);
        j->meta.domain_xml = strdup(vm->xml ?: "");
        j->domain = strdup(vm->domain_name);
        if (r >= 0 && (!j->meta.spec_json || !j->meta.source || !j->meta.domain_xml || !j->domain))
                r = -ENOMEM;
        if (r >= 0 && s->disk.path)
                r = asprintf(&j->disks[j->n_disks++], "%s/disk.qcow2", vm->dir) < 0 ? -ENOMEM : 0;
        for (size_t i = 0; r >= 0 && i < s->n_extra_disks; i++)
                r = asprintf(&j->disks[j->n_disks++], "%s/extra%zu.qcow2", vm->dir, i) < 0 ? -ENOMEM : 0;
        j->meta.n_disks = (unsigned) j->n_disks;
        if (r >= 0 && !m->snapshots)
                r = -EOPNOTSUPP;
        if (r >= 0)
                r = virt_call(m->virt, save_work, save_done, j);
        if (r < 0) {
                save_job_free(j);
                vm_op_fail(vm, vm->op_seq, r, "cannot save VM '%s': %m", vm->name);
        }
}

/* ---- templates ------------------------------------------------------------- */

static void on_template_saved(VM *vm, int error, const char *message, void *userdata) {
        Manager *m = vm_manager_of(vm);

        vm->template_saving = false;
        if (error < 0)
                log_internal(LOG_WARNING, error, vm_group_name(vm), vm->name,
                             "Cannot save the template of this VM's shape (%s); it goes on as it is", message);
        if (m)
                template_wait_end(m, vm->shape, error >= 0);
        /* A failed save is no fault of the VM's. */
        if (error < 0 && vm->last_error)
                vm_set_error(vm, NULL);
        vm_ready_evaluate(vm);
}

int vm_template_save_begin(VM *vm) {
        int r;

        if (!vm->template_build)
                return 0;
        free(vm->snapshot_name);
        vm->snapshot_name = NULL;
        vm->template_saving = true;
        r = vm_operation(vm, VM_OP_SNAPSHOT, 0, NULL, on_template_saved, NULL);
        if (r < 0) {
                vm->template_saving = false;
                log_internal(LOG_WARNING, r, vm_group_name(vm), vm->name, "Cannot save the template now: %m");
                vm_template_abandon(vm);
                return 0;
        }
        return 1;
}

void vm_template_abandon(VM *vm) {
        Manager *m = vm_manager_of(vm);

        vm->template_timer = sd_event_source_disable_unref(vm->template_timer);
        if (m)
                template_wait_leave(m, vm);
        if (!vm->template_build)
                return;
        vm->template_build = snapshot_build_abort(vm->template_build);
        if (m)
                template_wait_end(m, vm->shape, false);
}

/* ---- user snapshots ----------------------------------------------------- */

int vm_snapshot_create(VM *vm, const char *name, sd_bus_message *call) {
        Manager *m = vm_manager_of(vm);
        char *copy;
        int r;

        if (!m || !m->snapshots)
                return vmgr_bus_reply_error(call, -EOPNOTSUPP, "this vmgrd has no snapshot store (see its log)") < 0
                               ? -EIO
                               : 0;
        /* Not ready yet, or another operation (its template's save) runs. */
        if (vm->state != VM_READY || vm->op != VM_OP_NONE)
                return vmgr_bus_reply_error(call, -VMGR_ERR_BUSY, "VM '%s' is %s; a snapshot needs it ready", vm->name,
                                            vm->op != VM_OP_NONE ? "busy" : vm_state_to_string(vm->state)) < 0
                               ? -EIO
                               : 0;
        /* Its clones could not take their own identity; and one started
         * without the devices and shape a clone needs ("warm": false, a
         * cloud-init seed, warm_start off) could not be restored. */
        if (!vmgr_vm_spec_has_agent(&vm->spec) || !*vm->shape)
                return vmgr_bus_reply_error(call, -EOPNOTSUPP,
                                            "VM '%s' cannot be snapshotted: %s", vm->name,
                                            !vmgr_vm_spec_has_agent(&vm->spec)
                                                    ? "it has no guest agent to give its clones their own identity"
                                                    : "it was started cold only (\"warm\": false, a cloud-init seed, "
                                                      "or warm_start off in vmgrd's config)") < 0
                               ? -EIO
                               : 0;
        copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        free(vm->snapshot_name);
        vm->snapshot_name = copy;
        r = vm_operation(vm, VM_OP_SNAPSHOT, 0, call, NULL, NULL);
        if (r < 0) {
                free(vm->snapshot_name);
                vm->snapshot_name = NULL;
        }
        return r;
}

/* ---- a clone's identity -------------------------------------------------- */

/* The address dnsmasq gives mac in the group's range: its own choice
 * (a hash of the MAC), as long as no other lease has it. */
static void dnsmasq_address_guess(const struct vmgr_group_addrs *g, const uint8_t mac[6], uint8_t out[4]) {
        uint32_t first = ntohl(g->dhcp4_first.s_addr), last = ntohl(g->dhcp4_last.s_addr);
        unsigned j = 0;
        uint32_t a;

        for (size_t i = 0; i < 6; i++)
                j = mac[i] + (j << 6) + (j << 16) - j;
        if (j == 0)
                j = 1;
        a = htonl(first + j % (1 + last - first));
        memcpy(out, &a, 4);
}

static int links_up_submit(VM *vm);
static void identity_applied(VM *vm);

static void on_identity_done(AgentJob *job, void *userdata) {
        VM *vm = userdata;
        int error = agent_job_result(job)->error;

        vm->identity_job = agent_job_free(vm->identity_job);
        if (error == -ECONNRESET || error == -ENOTCONN) {
                vm->identity_sent = false; /* sent again to the next session */
                return;
        }
        if (error < 0) {
                char message[256];

                log_internal(LOG_ERR, error, vm_group_name(vm), vm->name,
                             "The guest agent could not take the clone's identity: %m");
                (void) vmgr_error_printf(message, sizeof(message), error,
                                         "the guest agent could not take the clone's identity: %m");
                vm_set_error(vm, message);
                return;
        }
        /* The guest has its own MACs now: its links may come up. */
        if (!vm->links_up) {
                if (!vm->links_job && links_up_submit(vm) < 0) {
                        log_internal(LOG_WARNING, 0, vm_group_name(vm), vm->name,
                                     "Cannot bring the clone's network links up");
                        identity_applied(vm);
                }
                return;
        }
        identity_applied(vm);
}

/* ---- a clone's links up again (libvirt, pool thread) ---------------------- */

typedef struct LinkJob {
        VM *vm;
        char *domain;
        unsigned n_nics;
        char error[256];
} LinkJob;

static int link_work(virConnectPtr conn, void *userdata) {
        LinkJob *j = userdata;
        virDomainPtr dom;
        int r = 0;

        dom = virDomainLookupByName(conn, j->domain);
        if (!dom) {
                snprintf(j->error, sizeof(j->error), "%s", virt_last_error());
                return -EIO;
        }
        for (unsigned i = 0; r >= 0 && i < j->n_nics; i++) {
                char command[128];

                snprintf(command, sizeof(command),
                         "{\"execute\":\"set_link\",\"arguments\":{\"name\":\"net%u\",\"up\":true}}", i);
                r = qmp(dom, command, -EBADF, NULL, j->error, sizeof(j->error));
        }
        virDomainFree(dom);
        return r;
}

static void on_dhcp_kick_done(AgentJob *job, void *userdata) {
        VM *vm = userdata;

        vm->dhcp_kick_job = agent_job_free(vm->dhcp_kick_job);
}

/* The agent restarted the guest's DHCP client while the links were down
 * (IDENTITY's last step), so its first DISCOVER was lost and the next
 * would come seconds later: ask it to hurry (udhcpc: SIGUSR1; systemd-
 * networkd: renew). Best effort: the client retries on its own anyway. */
static void dhcp_kick(VM *vm) {
        static char *const argv[] = {
                (char *) "/bin/sh", (char *) "-c",
                (char *) "p=$(cat /run/vmgr/udhcpc.enp2s0.pid 2>/dev/null) && kill -USR1 \"$p\" 2>/dev/null || "
                         "networkctl renew enp2s0 >/dev/null 2>&1 || :",
                NULL,
        };

        if (!vm->spec.ipv4 || vm->dhcp_kick_job || !agent_session_is_connected(vm->agent))
                return;
        if (agent_job_new(vm->agent, AGENT_JOB_EXEC, on_dhcp_kick_done, vm, &vm->dhcp_kick_job) < 0)
                return;
        if (agent_job_start_exec(vm->dhcp_kick_job, argv, NULL, NULL) < 0)
                vm->dhcp_kick_job = agent_job_free(vm->dhcp_kick_job);
}

static void identity_applied(VM *vm) {
        if (vm->timings[VM_STAGE_IDENTITY_APPLIED] == VM_STAGE_NOT_YET) {
                vm->timings[VM_STAGE_IDENTITY_APPLIED] = now_monotonic_usec() - vm->start_usec;
                log_internal(LOG_INFO, 0, vm_group_name(vm), vm->name, "identity_applied after %.3f s",
                             (double) vm->timings[VM_STAGE_IDENTITY_APPLIED] / 1e6);
                (void) vm_emit_changed(vm, "Timings", NULL);
        }
        vm_ready_evaluate(vm);
}

static void link_done(int result, void *userdata) {
        LinkJob *j = userdata;
        VM *vm = j->vm;

        vm->links_job = false;
        if (result < 0)
                log_internal(LOG_WARNING, result, vm_group_name(vm), vm->name,
                             "Cannot bring the clone's network links up: %s", j->error);
        /* Up or not, the VM goes on: a failure here must not hold it in
         * "starting" for ever (its probes say whether it is reachable). */
        vm->links_up = true;
        if (vm->group && vm->restored) {
                dhcp_kick(vm);
                identity_applied(vm);
        }
        vm_unref(j->vm);
        free(j->domain);
        free(j);
}

/* Bring the restored clone's links up; the identity counts as applied
 * when done. Returns 0 once under way, or -errno. */
static int links_up_submit(VM *vm) {
        Manager *m = vm_manager_of(vm);
        LinkJob *j;
        int r;

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->vm = vm_ref(vm);
        j->n_nics = vm->spec.ipv4 ? 2 : 1;
        j->domain = strdup(vm->domain_name);
        r = j->domain ? virt_call(m->virt, link_work, link_done, j) : -ENOMEM;
        if (r < 0) {
                vm_unref(j->vm);
                free(j->domain);
                free(j);
                return r;
        }
        vm->links_job = true;
        return 0;
}

void vm_identity_send(VM *vm) {
        uint8_t entropy[IDENTITY_ENTROPY_SIZE];
        struct vmgr_agent_identity id = {};
        char hostname[64];
        struct timespec ts;
        int r;

        if (!vm->restored || vm->identity_sent || vm->identity_job || !vm->group ||
            vm->timings[VM_STAGE_RESTORED] == VM_STAGE_NOT_YET || !agent_session_is_connected(vm->agent))
                return;
        /* A new generation for every identity: an INFO from before it (the
         * template's, or an earlier restore's) never counts. */
        if (getrandom(vm->generation, sizeof(vm->generation), 0) != sizeof(vm->generation) ||
            getrandom(entropy, sizeof(entropy), 0) != sizeof(entropy)) {
                log_internal(LOG_ERR, errno, vm_group_name(vm), vm->name, "Cannot get random bytes: %m");
                return;
        }
        memcpy(id.generation, vm->generation, sizeof(id.generation));
        clock_gettime(CLOCK_REALTIME, &ts);
        id.realtime_nsec = (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
        vm_hostname(vm->name, hostname, sizeof(hostname));
        id.hostname = hostname;
        id.nics[0] = (struct vmgr_agent_identity_nic) {
                .pci_slot = "0000:01:00.0",
                .family = VMGR_AGENT_FAMILY_IPV6,
                .prefixlen = 64,
                .service_prefixlen = 48,
        };
        memcpy(id.nics[0].mac, vm->addrs.mac, 6);
        memcpy(id.nics[0].address, &vm->addrs.ipv6, 16);
        memcpy(id.nics[0].gateway, &vm->group->addrs.gateway6, 16);
        id.n_nics = 1;
        if (vm->spec.ipv4) {
                id.nics[1] = (struct vmgr_agent_identity_nic) {
                        .pci_slot = "0000:02:00.0",
                        .family = VMGR_AGENT_FAMILY_IPV4,
                        .prefixlen = 24,
                };
                memcpy(id.nics[1].mac, vm->addrs.mac4, 6);
                dnsmasq_address_guess(&vm->group->addrs, vm->addrs.mac4, id.nics[1].address);
                memcpy(id.nics[1].gateway, &vm->group->addrs.gateway4, 4);
                id.n_nics = 2;
        }
        id.entropy = entropy;
        id.entropy_size = sizeof(entropy);

        r = agent_job_new(vm->agent, AGENT_JOB_IDENTITY, on_identity_done, vm, &vm->identity_job);
        if (r >= 0)
                r = agent_job_start_identity(vm->identity_job, &id);
        explicit_bzero(entropy, sizeof(entropy));
        if (r < 0) {
                vm->identity_job = agent_job_free(vm->identity_job);
                log_internal(LOG_WARNING, r, vm_group_name(vm), vm->name, "Cannot send the clone's identity: %m");
                return;
        }
        vm->identity_sent = true;
}
