/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "userns.h"

int vmgr_userns_is_initial(void) {
        char buf[256];
        unsigned long inner, outer, count;
        char extra;
        ssize_t n;
        int fd;

        fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        (void) close(fd);
        if (n < 0)
                return -errno;
        buf[n] = 0;
        /* One line, "0 0 4294967295"; anything else (more lines, another
         * range) is a namespace below the initial one. */
        if (sscanf(buf, " %lu %lu %lu %c", &inner, &outer, &count, &extra) != 3)
                return 0;
        return inner == 0 && outer == 0 && count == 4294967295UL;
}
