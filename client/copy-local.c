/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "copy-local.h"
#include "fd-util.h"
#include "macro.h"
#include "output.h"

int copy_to_local(int in, const char *dst) {
        static char buf[65536];
        _cleanup_close_ int out = -EBADF;
        int r;

        out = streq(dst, "-") ? dup(STDOUT_FILENO) : open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0)
                return log_error_reason(-EIO, -errno, "cannot write %s: %m", dst);
        for (;;) {
                ssize_t k = read(in, buf, sizeof(buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return log_error_reason(-EIO, -errno, "reading from the guest failed: %m");
                if (k == 0)
                        break;
                r = vmgr_write_all(out, buf, (size_t) k);
                if (r < 0)
                        return log_error_reason(-EIO, r, "cannot write %s: %m", dst);
        }
        return 0;
}
