/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* A group's state file as a restarted vmgrd reads it (daemon/group-state.c):
 * only a version 2 file of a running group with a spec is adopted; anything
 * else is refused with the reason that decides its clean-up. */

#include <errno.h>
#include <string.h>

#include "group-state.h"
#include "test.h"

static int parse(const char *text, char *why) {
        json_object *o = NULL;
        int r = group_state_parse(text, &o, why, 256);

        CHECK((r == 0) == (o != NULL));
        json_object_put(o);
        return r;
}

static void collect_name(const char *vm, void *userdata) {
        char *names = userdata;

        strcat(names, vm);
        strcat(names, " ");
}

int main(void) {
        char why[256];
        char names[64] = "";
        json_object *o = NULL;

        CHECK(parse("{\"version\":2,\"name\":\"g\",\"spec\":\"\",\"state\":\"running\"}", why) == 0);

        /* Not running: cleaned up, saying what it was. */
        CHECK(parse("{\"version\":2,\"name\":\"g\",\"spec\":\"\",\"state\":\"creating\"}", why) == -ESRCH);
        CHECK_STREQ(why, "it was creating, not running");
        CHECK(parse("{\"version\":2,\"name\":\"g\",\"spec\":\"\",\"state\":\"failed\"}", why) == -ESRCH);
        CHECK(parse("{\"version\":2,\"name\":\"g\",\"spec\":\"\"}", why) == -ESRCH);
        CHECK(parse("{\"version\":2,\"name\":\"g\",\"spec\":\"\",\"state\":7}", why) == -ESRCH);

        /* Written before adoption existed, or by a later vmgrd. */
        CHECK(parse("{\"version\":1,\"name\":\"g\",\"spec\":\"\",\"state\":\"running\"}", why) == -EPROTO);
        CHECK_STREQ(why, "the state file has version 1, not 2");
        CHECK(parse("{\"version\":3,\"name\":\"g\",\"spec\":\"\",\"state\":\"running\"}", why) == -EPROTO);
        CHECK(parse("{\"version\":\"2\",\"name\":\"g\",\"spec\":\"\",\"state\":\"running\"}", why) == -EPROTO);

        /* Not a state file at all. */
        CHECK(parse("", why) == -EBADMSG);
        CHECK(parse("[2]", why) == -EBADMSG);
        CHECK(parse("{\"version\":2,\"name\":\"g\",\"state\":\"running\"", why) == -EBADMSG);
        CHECK(parse("{\"version\":2,\"name\":\"g\",\"state\":\"running\"}", why) == -EBADMSG);
        CHECK_STREQ(why, "the state file has no spec");
        CHECK(parse("{\"version\":2,\"name\":\"g\",\"spec\":{},\"state\":\"running\"}", why) == -EBADMSG);

        /* The VM names it lists (what a restart keeps of libvirt's QEMUs);
         * an entry without a string name is skipped. */
        CHECK(group_state_parse("{\"version\":2,\"name\":\"g\",\"spec\":\"\",\"state\":\"running\","
                                "\"vms\":[{\"name\":\"a\"},{\"name\":5},{},{\"name\":\"b\"}]}",
                                &o, why, sizeof(why)) == 0);
        group_state_vm_names(o, collect_name, names);
        CHECK_STREQ(names, "a b ");
        json_object_put(o);

        TEST_DONE();
}
