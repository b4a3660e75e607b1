/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Small helpers shared by every vmgr program: scope-bound cleanup and
 * explicit ownership transfer. Functions in vmgr return int: >= 0 on
 * success, -errno on failure; output parameters are written only on success.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
/* Code that runs on a stack AddressSanitizer does not know of (a child
 * cloned with CLONE_VM, before its exec): with instrumentation, every call
 * of a noreturn function there would make it unpoison the wrong stack. */
#define _no_sanitize_address_ __attribute__((no_sanitize_address))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Unlink item from a doubly linked list threaded through its prev and next
 * fields, whose first element is head (an lvalue). item's own prev and next
 * are left as they were. */
#define LIST_REMOVE(head, item)                                  \
        do {                                                     \
                typeof(item) _li = (item);                       \
                if (_li->prev)                                   \
                        _li->prev->next = _li->next;             \
                else                                             \
                        (head) = _li->next;                      \
                if (_li->next)                                   \
                        _li->next->prev = _li->prev;             \
        } while (0)

/* The same for a list that also keeps its last element in tail. */
#define LIST_REMOVE_WITH_TAIL(head, tail, item)                  \
        do {                                                     \
                typeof(item) _lt = (item);                       \
                if (!_lt->next)                                  \
                        (tail) = _lt->prev;                      \
                LIST_REMOVE(head, _lt);                          \
        } while (0)

#ifndef MIN /* <sys/param.h> has one */
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#define sizeof_field(type, member) sizeof(((type *) 0)->member)

/* Hand ownership of a pointer/fd out of a _cleanup_ variable. */
#define TAKE_PTR(p)                                 \
        ({                                          \
                __typeof__(p) _taken_ = (p);        \
                (p) = NULL;                         \
                _taken_;                            \
        })
#define TAKE_FD(fd)                                 \
        ({                                          \
                int _taken_fd_ = (fd);              \
                (fd) = -EBADF;                      \
                _taken_fd_;                         \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Close an fd and return -EBADF, for "fd = safe_close(fd);". */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strempty(s) (!(s) || !*(s))
