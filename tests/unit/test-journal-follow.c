/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon/journal-follow.c without a server: which cursors it would send
 * back to a guest in a Range header, and the options it refuses. The
 * streams themselves are tests/integration/test-journal-follow.sh's.
 */

#include <errno.h>
#include <string.h>

#include "journal-follow.h"
#include "test.h"

static int on_line(JournalFollower *f, const char *line, size_t len, void *userdata) {
        return 0;
}

int main(void) {
        char longest[JOURNAL_CURSOR_MAX + 2];
        JournalFollower *f = NULL;
        sd_event *e = NULL;

        CHECK(journal_cursor_is_valid(
                "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8cb4e80aa2e6b2ddf1da5aa;m=2a1;t=5f0e1d2c3b4a5;x=1"));
        CHECK(journal_cursor_is_valid("s=a;i=1"));
        CHECK(!journal_cursor_is_valid(""));
        CHECK(!journal_cursor_is_valid("s=a;i=1\r\nX-Injected: 1"));
        CHECK(!journal_cursor_is_valid("s=a:1:5"));    /* ':' ends the cursor in a Range */
        CHECK(!journal_cursor_is_valid("s=a i=1"));
        CHECK(!journal_cursor_is_valid("s=\xc3\xa9"));
        memset(longest, 'a', sizeof(longest));
        longest[JOURNAL_CURSOR_MAX] = 0;
        CHECK(journal_cursor_is_valid(longest));
        longest[JOURNAL_CURSOR_MAX] = 'a';
        longest[JOURNAL_CURSOR_MAX + 1] = 0;
        CHECK(!journal_cursor_is_valid(longest));

        CHECK(sd_event_new(&e) >= 0);
        CHECK(journal_follower_new(e, &(JournalFollowerOptions) { .address = "::1", .on_line = on_line,
                                                                   .cursor = "s=a\nb" }, &f) == -EINVAL);
        CHECK(journal_follower_new(e, &(JournalFollowerOptions) { .on_line = on_line }, &f) == -EINVAL);
        CHECK(journal_follower_new(e, &(JournalFollowerOptions) { .address = "::1" }, &f) == -EINVAL);
        CHECK(journal_follower_new(e, &(JournalFollowerOptions) { .address = "::1", .on_line = on_line,
                                                                   .cursor = "s=a;i=1" }, &f) == 0);
        CHECK_STREQ(journal_follower_cursor(f), "s=a;i=1");
        CHECK(!journal_follower_is_connected(f));
        CHECK(journal_follower_entries(f) == 0);
        journal_follower_free(f);
        sd_event_unref(e);
        TEST_DONE();
}
