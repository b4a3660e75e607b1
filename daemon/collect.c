/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collect.h"
#include "fs-util.h"
#include "group.h"
#include "grouplog.h"
#include "log.h"
#include "macro.h"
#include "vm.h"
#include "vmgr-error.h"
#include "worker.h"

typedef struct CollectVM {
        char *name;
        char *console_raw;              /* the console file as QEMU wrote it */
        char *console_rotated;          /* its part before the last rotation (console.log.1) */
        char *xml;                      /* domain XML, or NULL before the first start */
} CollectVM;

typedef struct CollectJob {
        Group *group;                   /* reference */
        char *dir;
        char *group_log;
        char *runtime_dir;
        char *summary;                  /* group.json */
        char *timings;                  /* timings.json */
        CollectVM *vms;
        size_t n_vms;
        collect_done_t done;
        void *userdata;
        char error[512];
} CollectJob;

static void collect_job_free(CollectJob *j) {
        if (!j)
                return;
        group_unref(j->group);
        free(j->dir);
        free(j->group_log);
        free(j->runtime_dir);
        free(j->summary);
        free(j->timings);
        for (size_t i = 0; i < j->n_vms; i++) {
                free(j->vms[i].name);
                free(j->vms[i].console_raw);
                free(j->vms[i].console_rotated);
                free(j->vms[i].xml);
        }
        free(j->vms);
        free(j);
}

/* --- on the worker thread ------------------------------------------------------------------ */

static int write_at(int dirfd, const char *name, const char *data, size_t len) {
        _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);

        if (fd < 0)
                return -errno;
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                data += n;
                len -= (size_t) n;
        }
        return 0;
}

/* Copy src to name in dirfd; a missing src is no error (not made yet). */
static int copy_at(const char *src, int dirfd, const char *name) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        _cleanup_close_ int out = -EBADF;
        char buf[65536];

        if (in < 0)
                return errno == ENOENT ? 0 : -errno;
        out = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (out < 0)
                return -errno;
        for (;;) {
                ssize_t n = read(in, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                for (ssize_t off = 0; off < n;) {
                        ssize_t w = write(out, buf + off, (size_t) (n - off));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return -errno;
                        off += w;
                }
        }
}

/* Split the group's log: vmgrd.log gets vmgrd's lines (as they are), each
 * VM's console.log and guest.log get its lines without the prefix. */
static int split_log(CollectJob *j, int dirfd, int *vm_dirs) {
        _cleanup_fclose_ FILE *in = NULL, *vmgrd = NULL;
        FILE **console = NULL, **guest = NULL;
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        ssize_t n;
        int r = 0;

        in = fopen(j->group_log, "re");
        if (!in)
                return errno == ENOENT ? 0 : -errno;
        int fd = openat(dirfd, "vmgrd.log", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 || !(vmgrd = fdopen(fd, "we"))) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        console = calloc(j->n_vms ?: 1, sizeof(FILE *));
        guest = calloc(j->n_vms ?: 1, sizeof(FILE *));
        if (!console || !guest) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < j->n_vms; i++) {
                int c = openat(vm_dirs[i], "console.log", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
                int g = openat(vm_dirs[i], "guest.log", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (c >= 0)
                        console[i] = fdopen(c, "we");
                if (g >= 0)
                        guest[i] = fdopen(g, "we");
                if (!console[i] || !guest[i]) {
                        r = -errno;
                        if (!console[i])
                                safe_close(c);
                        if (!guest[i])
                                safe_close(g);
                        goto out;
                }
        }

        while ((n = getline(&line, &size, in)) > 0) {
                const char *end = memchr(line, ']', (size_t) n), *p = line + 1, *space, *text;
                size_t name_len = 0;
                const char *name = NULL;

                if (line[0] != '[' || !end)
                        continue;
                text = end + 1 + (end[1] == ' ');
                if (strncmp(p, "vm=", 3) == 0 && (space = memchr(p, ' ', (size_t) (end - p)))) {
                        name = p + 3;
                        name_len = (size_t) (space - name);
                        p = space + 1;
                }
                if ((size_t) (end - p) == 5 && strncmp(p, "vmgrd", 5) == 0) {
                        fputs(line, vmgrd);
                        continue;
                }
                if (!name)
                        continue;
                for (size_t i = 0; i < j->n_vms; i++) {
                        if (strlen(j->vms[i].name) != name_len || strncmp(j->vms[i].name, name, name_len) != 0)
                                continue;
                        if ((size_t) (end - p) == 7 && strncmp(p, "console", 7) == 0)
                                fputs(text, console[i]);
                        else if ((size_t) (end - p) == 5 && strncmp(p, "guest", 5) == 0)
                                fputs(text, guest[i]);
                        break;
                }
        }
        if (ferror(in))
                r = -EIO;
out:
        for (size_t i = 0; i < j->n_vms; i++) {
                if (console && console[i] && fclose(console[i]) != 0 && r == 0)
                        r = -errno;
                if (guest && guest[i] && fclose(guest[i]) != 0 && r == 0)
                        r = -errno;
        }
        free(console);
        free(guest);
        if (fflush(vmgrd) != 0 && r == 0)
                r = -errno;
        return r;
}

static int collect_work(void *userdata) {
        CollectJob *j = userdata;
        _cleanup_close_ int dirfd = -EBADF, vmsfd = -EBADF;
        int *vm_dirs = NULL;
        char path[4096];
        int r;

#define FAIL(r_, ...)                                                                  \
        do {                                                                           \
                r = vmgr_error_printf(j->error, sizeof(j->error), (r_), __VA_ARGS__);  \
                goto out;                                                              \
        } while (0)

        r = mkdir_p(j->dir, 0755);
        if (r < 0)
                FAIL(r, "cannot create %s: %m", j->dir);
        dirfd = open(j->dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (dirfd < 0)
                FAIL(-errno, "cannot open %s: %m", j->dir);

        r = write_at(dirfd, "group.json", j->summary, strlen(j->summary));
        if (r >= 0)
                r = write_at(dirfd, "timings.json", j->timings, strlen(j->timings));
        if (r >= 0)
                r = copy_at(j->group_log, dirfd, "group.log");
        if (r < 0)
                FAIL(r, "cannot write into %s: %m", j->dir);

        static const char *const dnsmasq_files[] = { "dnsmasq.log", "dnsmasq.leases" };
        for (size_t i = 0; i < ELEMENTSOF(dnsmasq_files); i++) {
                snprintf(path, sizeof(path), "%s/%s", j->runtime_dir, dnsmasq_files[i]);
                r = copy_at(path, dirfd, dnsmasq_files[i]);
                if (r < 0)
                        FAIL(r, "cannot copy the group's %s: %m", dnsmasq_files[i]);
        }

        if (mkdirat(dirfd, "vms", 0755) < 0 && errno != EEXIST)
                FAIL(-errno, "cannot create %s/vms: %m", j->dir);
        vmsfd = openat(dirfd, "vms", O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (vmsfd < 0)
                FAIL(-errno, "cannot open %s/vms: %m", j->dir);
        vm_dirs = calloc(j->n_vms ?: 1, sizeof(int));
        if (!vm_dirs)
                FAIL(-ENOMEM, "out of memory");
        for (size_t i = 0; i < j->n_vms; i++)
                vm_dirs[i] = -EBADF;
        for (size_t i = 0; i < j->n_vms; i++) {
                const CollectVM *v = &j->vms[i];

                if (mkdirat(vmsfd, v->name, 0755) < 0 && errno != EEXIST)
                        FAIL(-errno, "cannot create %s/vms/%s: %m", j->dir, v->name);
                vm_dirs[i] = openat(vmsfd, v->name, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (vm_dirs[i] < 0)
                        FAIL(-errno, "cannot open %s/vms/%s: %m", j->dir, v->name);
                /* The older part first in name order: console.raw.1 precedes console.raw. */
                r = copy_at(v->console_rotated, vm_dirs[i], "console.raw.1");
                if (r >= 0)
                        r = copy_at(v->console_raw, vm_dirs[i], "console.raw");
                if (r >= 0 && v->xml)
                        r = write_at(vm_dirs[i], "domain.xml", v->xml, strlen(v->xml));
                if (r < 0)
                        FAIL(r, "cannot write into %s/vms/%s: %m", j->dir, v->name);
        }
        r = split_log(j, dirfd, vm_dirs);
        if (r < 0)
                FAIL(r, "cannot split the group's log into %s: %m", j->dir);
        r = 0;
out:
        if (vm_dirs)
                for (size_t i = 0; i < j->n_vms; i++)
                        safe_close(vm_dirs[i]);
        free(vm_dirs);
        return r;
#undef FAIL
}

static void collect_done(int result, void *userdata) {
        CollectJob *j = userdata;

        if (result < 0 && !j->error[0])
                (void) vmgr_error_printf(j->error, sizeof(j->error), result, "%m");
        if (result < 0)
                log_group_errno(LOG_WARNING, result, j->group->name, "Collecting into %s failed: %s", j->dir, j->error);
        else
                log_group(LOG_INFO, j->group->name, "Collected the group's evidence into %s", j->dir);
        j->done(j->group, result, j->error, j->userdata);
        collect_job_free(j);
}

/* --- on the event loop --------------------------------------------------------------------- */

static json_object *timings_object(const uint64_t *timings, unsigned n, uint64_t not_yet,
                                   const char *(*name)(unsigned)) {
        json_object *o = json_object_new_object();

        for (unsigned s = 0; o && s < n; s++)
                if (timings[s] != not_yet)
                        json_object_object_add(o, name(s), json_object_new_int64((int64_t) timings[s]));
        return o;
}

static const char *group_stage_name(unsigned s) {
        return group_stage_to_string((GroupStage) s);
}

static const char *vm_stage_name(unsigned s) {
        return vm_stage_to_string((VMStage) s);
}

static int build_json(Group *g, CollectJob *j) {
        json_object *summary = json_object_new_object(), *timings = json_object_new_object();
        json_object *vms = json_object_new_array(), *vm_timings = json_object_new_object(), *addrs;
        char buf[INET6_ADDRSTRLEN + 8];
        int r = -ENOMEM;

        if (!summary || !timings || !vms || !vm_timings)
                goto out;
        json_object_object_add(summary, "name", json_object_new_string(g->name));
        json_object_object_add(summary, "state", json_object_new_string(group_state_to_string(g->state)));
        json_object_object_add(summary, "created_usec", json_object_new_int64((int64_t) g->created_usec));
        json_object_object_add(summary, "collected_usec", json_object_new_int64((int64_t) time(NULL) * 1000000));
        json_object_object_add(summary, "spec", json_tokener_parse(g->spec_json));
        addrs = json_object_new_object();
        json_object_object_add(addrs, "bridge", json_object_new_string(g->addrs.bridge));
        json_object_object_add(addrs, "prefix6",
                               json_object_new_string(vmgr_in6_prefix_format(&g->addrs.prefix6, 64, buf, sizeof(buf))));
#define ADDR(key, family, field)                                                                         \
        json_object_object_add(addrs, key, json_object_new_string(inet_ntop(family, &g->addrs.field, buf, \
                                                                            sizeof(buf)) ?: ""))
        ADDR("gateway6", AF_INET6, gateway6);
        ADDR("management6", AF_INET6, management6);
        ADDR("logs6", AF_INET6, logs6);
        ADDR("files6", AF_INET6, files6);
        json_object_object_add(addrs, "subnet4",
                               json_object_new_string(vmgr_in4_prefix_format(&g->addrs.subnet4, 24, buf, sizeof(buf))));
        ADDR("gateway4", AF_INET, gateway4);
#undef ADDR
        json_object_object_add(summary, "addresses", addrs);

        for (VM *vm = g->vms; vm; vm = vm->next) {
                json_object *v = json_object_new_object();

                json_object_object_add(v, "name", json_object_new_string(vm->name));
                json_object_object_add(v, "state", json_object_new_string(vm_state_to_string(vm->state)));
                json_object_object_add(v, "ipv6",
                                       json_object_new_string(inet_ntop(AF_INET6, &vm->addrs.ipv6, buf, sizeof(buf)) ?: ""));
                json_object_object_add(v, "ipv4", json_object_new_string(vm->ipv4 ?: ""));
                json_object_object_add(v, "last_error", json_object_new_string(vm->last_error ?: ""));
                json_object_object_add(v, "timings",
                                       timings_object(vm->timings, _VM_STAGE_MAX, VM_STAGE_NOT_YET, vm_stage_name));
                json_object_array_add(vms, v);
                json_object_object_add(vm_timings, vm->name,
                                       timings_object(vm->timings, _VM_STAGE_MAX, VM_STAGE_NOT_YET, vm_stage_name));
        }
        json_object_object_add(summary, "vms", vms);
        vms = NULL;
        json_object_object_add(summary, "timings",
                               timings_object(g->timings, _GROUP_STAGE_MAX, GROUP_STAGE_NOT_YET, group_stage_name));
        json_object_object_add(timings, "group",
                               timings_object(g->timings, _GROUP_STAGE_MAX, GROUP_STAGE_NOT_YET, group_stage_name));
        json_object_object_add(timings, "vms", vm_timings);
        vm_timings = NULL;

        j->summary = strdup(json_object_to_json_string_ext(summary, JSON_C_TO_STRING_PRETTY));
        j->timings = strdup(json_object_to_json_string_ext(timings, JSON_C_TO_STRING_PRETTY));
        r = j->summary && j->timings ? 0 : -ENOMEM;
out:
        json_object_put(summary);
        json_object_put(timings);
        json_object_put(vms);
        json_object_put(vm_timings);
        return r;
}

/* A job for g's bundle into dir, with what it copies taken now. Returns 0
 * and the job in *ret, or -ESTALE (the group is gone) or -ENOMEM; *ret is
 * NULL or the job to free either way. */
static int collect_job_new(Group *g, const char *dir, collect_done_t done, void *userdata, CollectJob **ret) {
        CollectJob *j;

        *ret = NULL;
        if (!g->manager || !g->log)
                return -ESTALE;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        *ret = j;
        j->group = group_ref(g);
        j->done = done;
        j->userdata = userdata;
        j->dir = strdup(dir);
        j->group_log = strdup(group_log_path(g->log));
        j->runtime_dir = strdup(g->runtime_dir);
        j->vms = calloc(g->n_vms ?: 1, sizeof(CollectVM));
        if (!j->dir || !j->group_log || !j->runtime_dir || !j->vms)
                return -ENOMEM;
        for (VM *vm = g->vms; vm; vm = vm->next) {
                CollectVM *v = &j->vms[j->n_vms++];

                /* Whatever the console has that the follower has not read yet. */
                console_follower_sync(vm->console);
                v->name = strdup(vm->name);
                v->console_raw = strdup(vm->console_log);
                if (asprintf(&v->console_rotated, "%s.1", vm->console_log) < 0)
                        v->console_rotated = NULL;
                v->xml = vm->xml ? strdup(vm->xml) : NULL;
                if (!v->name || !v->console_raw || !v->console_rotated || (vm->xml && !v->xml))
                        return -ENOMEM;
        }
        return 0;
}

int group_collect(Group *g, const char *dir, collect_done_t done, void *userdata, char *error, size_t error_size) {
        CollectJob *j;
        int r;

        r = collect_job_new(g, dir, done, userdata, &j);
        if (r >= 0)
                r = build_json(g, j);
        if (r >= 0)
                r = worker_submit(g->manager->workers, collect_work, collect_done, j);
        if (r < 0) {
                collect_job_free(j);
                return vmgr_error_printf(error, error_size, r, "cannot collect group '%s': %m", g->name);
        }
        return 0;
}
