/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * daemon/fs-util.c's dir_hand_over(), as root in a temporary directory:
 * what root creates and hands to a user, and everything it must leave
 * alone because another user controls it. And mkdir_p().
 */

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs-util.h"
#include "macro.h"
#include "test.h"

#define USER_UID 4242
#define USER_GID 4242
#define OTHER_UID 4343

static char dir[] = "/tmp/test-fs-util-XXXXXX";

static char *path_in(const char *name) {
        char *p;
        CHECK(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

/* uid of name (not following a symlink), or -1 if it does not exist. */
static long owner(const char *name) {
        _cleanup_free_ char *p = path_in(name);
        struct stat st;

        return lstat(p, &st) < 0 ? -1 : (long) st.st_uid;
}

static unsigned mode(const char *name) {
        _cleanup_free_ char *p = path_in(name);
        struct stat st;

        CHECK(lstat(p, &st) == 0);
        return st.st_mode & 07777;
}

static void make_dir(const char *name, mode_t m, uid_t uid) {
        _cleanup_free_ char *p = path_in(name);

        CHECK(mkdir(p, m) == 0);
        CHECK(chmod(p, m) == 0);
        CHECK(lchown(p, uid, uid) == 0);
}

static void make_file(const char *name, uid_t uid) {
        _cleanup_free_ char *p = path_in(name);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

        CHECK(fd >= 0);
        close(fd);
        CHECK(lchown(p, uid, uid) == 0);
}

static void make_symlink(const char *name, const char *target, uid_t uid) {
        _cleanup_free_ char *p = path_in(name);

        CHECK(symlink(target, p) == 0);
        CHECK(lchown(p, uid, uid) == 0);
}

static int hand_over(const char *name) {
        _cleanup_free_ char *p = path_in(name);

        return dir_hand_over(p, USER_UID, USER_GID);
}

/* mkdir_p(): every missing component made with the mode, whether none,
 * only the last or several are missing; an existing one is success. */
static void test_mkdir_p(void) {
        _cleanup_free_ char *deep = path_in("p1/p2/p3"), *leaf = path_in("p1/p2/leaf"), *file = path_in("p1/f");

        CHECK(mkdir_p(deep, 0700) == 0);
        CHECK(mode("p1") == 0700 && mode("p1/p2") == 0700 && mode("p1/p2/p3") == 0700);
        CHECK(mkdir_p(deep, 0700) == 0);
        CHECK(mkdir_p(leaf, 0750) == 0);
        CHECK(mode("p1/p2/leaf") == 0750);
        make_file("p1/f", 0);
        CHECK(mkdir_p(file, 0700) == 0); /* EEXIST, as for any component */
        {
                _cleanup_free_ char *under_file = path_in("p1/f/x");
                CHECK(mkdir_p(under_file, 0700) == -ENOTDIR);
        }
        CHECK(mkdir_p("", 0700) == -EINVAL);
}

/* Missing directories are made: the parents root's and 0755, the last one the user's and 0700. */
static void test_new(void) {
        CHECK(hand_over("new/a/top") == 1);
        CHECK(owner("new") == 0 && mode("new") == 0755);
        CHECK(owner("new/a") == 0 && mode("new/a") == 0755);
        CHECK(owner("new/a/top") == USER_UID && mode("new/a/top") == 0700);
        /* Again: nothing to do, still fine. */
        CHECK(hand_over("new/a/top") == 1);
}

/* A directory the user owns is not looked into, whatever it holds. */
static void test_users_own(void) {
        make_dir("own", 0755, USER_UID);
        make_file("own/roots", 0);
        CHECK(hand_over("own") == 1);
        CHECK(owner("own/roots") == 0);
        CHECK(mode("own") == 0700);
}

/* A root-owned tree (an older vmgrd that ran as root): what root owns is
 * handed over, except files with more than one name; what others own, and
 * everything below it, is left alone. */
static void test_roots_tree(void) {
        _cleanup_free_ char *outside = path_in("outside"), *h = path_in("old/h"), *h2 = path_in("old/h2");

        make_file("outside", 0);
        make_dir("old", 0755, 0);
        make_file("old/f", 0);
        make_dir("old/sub", 0755, 0);
        make_file("old/sub/g", 0);
        make_file("old/h", 0);
        CHECK(link(h, h2) == 0);
        make_dir("old/users", 0755, USER_UID);
        make_file("old/users/x", 0);
        make_dir("old/others", 0755, OTHER_UID);
        make_dir("old/others/deeper", 0755, 0);
        make_symlink("old/s", outside, 0);

        CHECK(hand_over("old") == 1);
        CHECK(owner("old") == USER_UID && mode("old") == 0700);
        CHECK(owner("old/f") == USER_UID);
        CHECK(owner("old/sub") == USER_UID && owner("old/sub/g") == USER_UID);
        CHECK(owner("old/h") == 0 && owner("old/h2") == 0);
        CHECK(owner("old/users/x") == 0);
        CHECK(owner("old/others") == OTHER_UID && owner("old/others/deeper") == 0);
        CHECK(owner("old/s") == USER_UID);
        CHECK(owner("outside") == 0);
}

/* Nothing is made or changed below a directory another user controls. */
static void test_users_path(void) {
        make_dir("userdir", 0755, USER_UID);
        CHECK(hand_over("userdir/top") == 0);
        CHECK(owner("userdir/top") == -1);

        make_dir("groupw", 0775, 0);
        CHECK(hand_over("groupw/top") == 0);
        CHECK(owner("groupw/top") == -1);

        /* Sticky and world-writable, like /tmp: others cannot move root's entries. */
        make_dir("sticky", 01777, 0);
        CHECK(hand_over("sticky/top") == 1);
        CHECK(owner("sticky/top") == USER_UID);
        /* An entry another user made there is that user's: not a way for root. */
        make_dir("sticky/theirs", 0755, OTHER_UID);
        CHECK(hand_over("sticky/theirs/top") == 0);
        CHECK(owner("sticky/theirs/top") == -1);
}

/* Root's symlinks are followed; a user's never. */
static void test_symlinks(void) {
        _cleanup_free_ char *real = path_in("real");

        make_dir("real", 0755, 0);
        make_symlink("rootlink", real, 0);
        CHECK(hand_over("rootlink/top") == 1);
        CHECK(owner("real/top") == USER_UID);

        make_symlink("userlink", real, USER_UID);
        CHECK(hand_over("userlink/top2") == 0);
        CHECK(owner("real/top2") == -1);

        /* A user's symlink as the directory itself, to a directory of root's. */
        make_dir("usersdir", 0755, USER_UID);
        make_symlink("usersdir/top", real, USER_UID);
        CHECK(hand_over("usersdir/top") == 0);
        CHECK(owner("real") == 0 && mode("real") == 0755);

        /* A relative symlink of root's, then more components after it. */
        make_symlink("rel", "real", 0);
        CHECK(hand_over("rel/x/y") == 1);
        CHECK(owner("real/x") == 0 && owner("real/x/y") == USER_UID);
}

/* A third user's directory is refused and left alone. */
static void test_third_user(void) {
        make_dir("other", 0755, OTHER_UID);
        CHECK(hand_over("other") == -EPERM);
        CHECK(owner("other") == OTHER_UID && mode("other") == 0755);

        CHECK(dir_hand_over("relative/path", USER_UID, USER_GID) == -EINVAL);
        make_file("file", 0);
        CHECK(hand_over("file") == -ENOTDIR);
}

int main(void) {
        if (geteuid() != 0) {
                printf("# skipped: dir_hand_over() changes owners, which needs root\n");
                return 77;
        }
        umask(0022);
        CHECK(mkdtemp(dir));
        CHECK(chmod(dir, 0755) == 0);

        test_new();
        test_users_own();
        test_roots_tree();
        test_users_path();
        test_symlinks();
        test_third_user();
        test_mkdir_p();

        CHECK(rm_rf(dir) == 0);
        TEST_DONE();
}
