/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/sockdir.c: SOCKDIR_SUFFIX_MAX is the length of the longest socket
 * path (QEMU's monitor with a 10-digit domain id and a 20-byte short
 * name); a runtime directory of up to 23 characters is its own socket
 * directory. A longer one (here 120 characters) gets a stand-in
 * /tmp/vmgrd-XXXXXX of mode 0700 whose "r" leads to it: the longest socket
 * binds below it and lands in the runtime directory. The next setup on the
 * same runtime directory (a vmgrd after a crash) finds the same stand-in;
 * remove() takes it and RUNTIME/sockdir away.
 *
 * The attacks: a stand-in is never used when another user owns it, when
 * group or others have bits on it, when a symlink stands in its place,
 * when its "r" leads elsewhere, or when RUNTIME/sockdir names a path
 * outside /tmp/vmgrd-XXXXXX: a new one is made each time and the foreign
 * one left alone. A base directory that others may write to without the
 * sticky bit holds no stand-in. When the record is lost (a killed vmgrd in
 * namespace mode), the stand-ins of the runtime directory are found in /tmp:
 * one is used again, the others removed.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "sockdir.h"
#include "test.h"

#define MONITOR "/libvirt/config/libvirt/qemu/lib/domain-2147483647-nnnnnnnnnnnnnnnnnnnn/monitor.sock"

static char top[] = "/tmp/test-sockdir-XXXXXX";
static char runtime[121];

/* RUNTIME/sockdir's target, or "" (static). */
static const char *recorded(void) {
        static char buf[PATH_MAX];
        char *link;
        ssize_t n;

        CHECK(asprintf(&link, "%s/sockdir", runtime) > 0);
        n = readlink(link, buf, sizeof(buf) - 1);
        free(link);
        buf[n < 0 ? 0 : n] = 0;
        return buf;
}

/* Point RUNTIME/sockdir at target. */
static void record(const char *target) {
        char *link;

        CHECK(asprintf(&link, "%s/sockdir", runtime) > 0);
        (void) unlink(link);
        CHECK(symlink(target, link) == 0);
        free(link);
}

/* A directory like a stand-in, /tmp/vmgrd-XXXXXX with "r" -> to (static). */
static const char *fake_standin(const char *to, mode_t mode) {
        static char dir[] = "/tmp/vmgrd-XXXXXX";
        char *r;

        memcpy(dir + strlen(dir) - 6, "XXXXXX", 6);
        CHECK(mkdtemp(dir));
        CHECK(asprintf(&r, "%s/r", dir) > 0);
        CHECK(symlink(to, r) == 0);
        CHECK(chmod(dir, mode) == 0);
        free(r);
        return dir;
}

/* The foreign one was left alone; now remove it. */
static void remove_fake(const char *dir) {
        struct stat st;

        CHECK(lstat(dir, &st) == 0);
        CHECK(rm_rf(dir) == 0);
}

/* Set up, expect a new stand-in (not the one at avoid/r), remove it again. */
static void check_new_standin(const char *avoid) {
        char *avoid_path;
        SockDir *d;

        CHECK(asprintf(&avoid_path, "%s/r", avoid) > 0);
        CHECK(sockdir_setup(runtime, SOCKDIR_BASE, &d) == 0);
        CHECK(strcmp(sockdir_path(d), avoid_path) != 0);
        CHECK(strncmp(sockdir_path(d), "/tmp/vmgrd-", 11) == 0);
        sockdir_remove(d);
        free(avoid_path);
}

static void test_fits(void) {
        char dir[32];

        CHECK(strlen(MONITOR) == SOCKDIR_SUFFIX_MAX);
        memset(dir, 'x', sizeof(dir));
        dir[0] = '/';
        dir[23] = 0;
        CHECK(sockdir_fits(dir));
        dir[23] = 'x';
        dir[24] = 0;
        CHECK(!sockdir_fits(dir));
}

static void test_short_runtime(void) {
        char dir[] = "/tmp/tsd-XXXXXX";
        SockDir *d;

        CHECK(mkdtemp(dir));
        CHECK(sockdir_setup(dir, SOCKDIR_BASE, &d) == 0);
        CHECK_STREQ(sockdir_path(d), dir);
        sockdir_remove(d);
        CHECK(rmdir(dir) == 0); /* nothing was made in it */
}

static void test_long_runtime(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char standin[PATH_MAX], r_target[PATH_MAX], *sock_dir, *in_runtime, *path;
        struct stat st;
        SockDir *d, *again;
        ssize_t n;
        int fd;

        CHECK(sockdir_setup(runtime, SOCKDIR_BASE, &d) == 0);
        path = strdup(sockdir_path(d));
        CHECK(path);
        CHECK(strlen(path) == strlen("/tmp/vmgrd-XXXXXX/r"));
        CHECK(strncmp(path, "/tmp/vmgrd-", 11) == 0 && streq(path + 17, "/r"));
        snprintf(standin, sizeof(standin), "%.*s", 17, path);
        CHECK_STREQ(recorded(), standin);
        CHECK(lstat(standin, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700 &&
              st.st_uid == geteuid());
        n = readlink(path, r_target, sizeof(r_target) - 1);
        CHECK(n > 0);
        r_target[n] = 0;
        CHECK_STREQ(r_target, runtime);

        /* The longest socket binds below it and lands in the runtime directory. */
        CHECK(asprintf(&sock_dir, "%s/libvirt/config/libvirt/qemu/lib/domain-2147483647-nnnnnnnnnnnnnnnnnnnn",
                       runtime) > 0);
        CHECK(mkdir_p(sock_dir, 0700) == 0);
        CHECK(strlen(path) + strlen(MONITOR) < sizeof(sa.sun_path));
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s%s", path, MONITOR);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        CHECK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        close(fd);
        CHECK(asprintf(&in_runtime, "%s/monitor.sock", sock_dir) > 0);
        CHECK(lstat(in_runtime, &st) == 0 && S_ISSOCK(st.st_mode));
        CHECK(unlink(in_runtime) == 0);

        /* The next vmgrd finds the same one. */
        sockdir_free(d);
        CHECK(sockdir_setup(runtime, SOCKDIR_BASE, &again) == 0);
        CHECK_STREQ(sockdir_path(again), path);

        /* A clean stop takes it away, and the record, and nothing else. */
        sockdir_remove(again);
        CHECK(lstat(standin, &st) < 0 && errno == ENOENT);
        CHECK_STREQ(recorded(), "");
        CHECK(stat(sock_dir, &st) == 0 && S_ISDIR(st.st_mode));

        free(sock_dir);
        free(in_runtime);
        free(path);
}

static void test_attacks(void) {
        char name[] = "/tmp/vmgrd-XXXXXX";
        const char *evil;
        char *target, *r;

        /* Another user's directory (it could have made one with any name). */
        if (geteuid() == 0) {
                evil = fake_standin(runtime, 0700);
                CHECK(chown(evil, 65534, 65534) == 0);
                record(evil);
                check_new_standin(evil);
                remove_fake(evil);
        } else
                printf("not root: the stand-in of another user is not tried\n");

        /* Ours, but open to others. */
        evil = fake_standin(runtime, 0755);
        record(evil);
        check_new_standin(evil);
        remove_fake(evil);

        /* Its "r" leads elsewhere. */
        evil = fake_standin("/etc", 0700);
        record(evil);
        check_new_standin(evil);
        remove_fake(evil);

        /* A symlink in the stand-in's place, to a directory that would pass
         * (elsewhere: in /tmp it would be found as a stand-in of ours). */
        CHECK(asprintf(&target, "%s/elsewhere", top) > 0);
        CHECK(mkdir(target, 0700) == 0);
        CHECK(asprintf(&r, "%s/r", target) > 0);
        CHECK(symlink(runtime, r) == 0);
        CHECK(mkdtemp(name));
        CHECK(rmdir(name) == 0);
        CHECK(symlink(target, name) == 0);
        record(name);
        check_new_standin(name);
        CHECK(unlink(name) == 0); /* left alone */
        free(target);
        free(r);

        /* A record that names something that is no stand-in. */
        record("/var/tmp/vmgrd-abcdef");
        check_new_standin("/var/tmp/vmgrd-abcdef");
        record("/tmp/vmgrd-abc/../x");
        check_new_standin("/tmp/vmgrd-abc/../x");
}

/* A record lost (a namespace-mode vmgrd killed: its holder emptied the
 * runtime directory): the stand-ins of this runtime directory are found in
 * /tmp; the first is used again, the others removed. */
static void test_record_lost(void) {
        char *first, *second;
        SockDir *d;
        struct stat st;

        CHECK(sockdir_setup(runtime, SOCKDIR_BASE, &d) == 0);
        first = strndup(sockdir_path(d), 17);
        sockdir_free(d);
        record("/tmp/vmgrd-gone00"); /* as if lost: names nothing */
        second = strdup(fake_standin(runtime, 0700));
        CHECK(first && second);
        CHECK(sockdir_setup(runtime, SOCKDIR_BASE, &d) == 0);
        CHECK(strncmp(sockdir_path(d), first, 17) == 0 || strncmp(sockdir_path(d), second, 17) == 0);
        CHECK(strlen(recorded()) == 17 && strncmp(recorded(), sockdir_path(d), 17) == 0);
        /* Exactly one of the two is left: the one in use. */
        CHECK((lstat(first, &st) == 0) + (lstat(second, &st) == 0) == 1);
        sockdir_remove(d);
        CHECK(lstat(first, &st) < 0 && lstat(second, &st) < 0);
        free(first);
        free(second);
}

static void test_unsafe_base(void) {
        char base[] = "/tmp/b-XXXXXX";
        SockDir *d;

        CHECK(mkdtemp(base));
        CHECK(chmod(base, 0777) == 0);
        CHECK(sockdir_setup(runtime, base, &d) == -EPERM);
        /* Sticky is safe, but "/tmp/b-XXXXXX/vmgrd-XXXXXX/r" is too long. */
        CHECK(chmod(base, 01777) == 0);
        CHECK(sockdir_setup(runtime, base, &d) == -ENAMETOOLONG);
        CHECK(rmdir(base) == 0); /* nothing was made in it */
        CHECK_STREQ(recorded(), "");
}

int main(void) {
        size_t n;

        CHECK(mkdtemp(top));
        n = strlen(top);
        memcpy(runtime, top, n);
        runtime[n] = '/';
        memset(runtime + n + 1, 'r', sizeof(runtime) - n - 2);
        runtime[sizeof(runtime) - 1] = 0;
        CHECK(mkdir(runtime, 0700) == 0);

        test_fits();
        test_short_runtime();
        test_long_runtime();
        test_attacks();
        test_record_lost();
        test_unsafe_base();

        CHECK(rm_rf(top) == 0);
        TEST_DONE();
}
