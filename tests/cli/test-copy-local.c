/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * "vmgrctl cp GROUP/VM:/PATH FILE" failing here, on our side: the message
 * names what really failed (not "Input/output error" for every cause) and
 * the result stays -EIO, exit status 1 as documented. No VM needed: the
 * guest's stream is a pipe.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy-local.h"
#include "test.h"

static char dir[] = "/tmp/vmgr-test-copy-XXXXXX";

/* Runs copy_to_local() from a pipe holding data into dst, with stderr caught
 * in err (NUL-terminated). Returns what copy_to_local() returned. */
static int copy_caught(const char *data, const char *dst, char *err, size_t size) {
        int p[2], saved, r;
        FILE *f;
        size_t n;

        CHECK(pipe2(p, O_CLOEXEC) == 0);
        CHECK(write(p[1], data, strlen(data)) == (ssize_t) strlen(data));
        close(p[1]);
        f = tmpfile();
        CHECK(f);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        CHECK(saved >= 0 && dup2(fileno(f), STDERR_FILENO) == STDERR_FILENO);
        r = copy_to_local(p[0], dst);
        fflush(stderr);
        CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
        close(saved);
        close(p[0]);
        rewind(f);
        n = fread(err, 1, size - 1, f);
        err[n] = '\0';
        fclose(f);
        return r;
}

int main(void) {
        char err[4096], path[256], got[64] = "";
        int fd;

        CHECK(mkdtemp(dir));

        /* A full disk: the words say so. */
        CHECK(copy_caught("data", "/dev/full", err, sizeof(err)) == -EIO);
        CHECK_STREQ(err, "vmgrctl: cannot write /dev/full: No space left on device\n");

        /* A directory that is not there. */
        snprintf(path, sizeof(path), "%s/missing/out", dir);
        CHECK(copy_caught("data", path, err, sizeof(err)) == -EIO);
        CHECK(strstr(err, ": No such file or directory\n"));
        CHECK(!strstr(err, "Input/output error"));

        /* A parent that is a file. */
        snprintf(path, sizeof(path), "%s/file", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        close(fd);
        snprintf(path, sizeof(path), "%s/file/out", dir);
        CHECK(copy_caught("data", path, err, sizeof(err)) == -EIO);
        CHECK(strstr(err, ": Not a directory\n"));

        /* A directory as the destination. */
        CHECK(copy_caught("data", dir, err, sizeof(err)) == -EIO);
        CHECK(strstr(err, ": Is a directory\n"));

        /* And the copy itself works. */
        snprintf(path, sizeof(path), "%s/ok", dir);
        CHECK(copy_caught("hello guest\n", path, err, sizeof(err)) == 0);
        CHECK_STREQ(err, "");
        fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0 && read(fd, got, sizeof(got) - 1) == 12);
        close(fd);
        CHECK_STREQ(got, "hello guest\n");

        unlink(path);
        snprintf(path, sizeof(path), "%s/file", dir);
        unlink(path);
        rmdir(dir);
        TEST_DONE();
}
