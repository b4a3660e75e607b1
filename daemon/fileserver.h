/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A group's file server: HTTP on [files address]:8080 (docs/dbus-api.md,
 * "Files"), for guests that fetch images and packages from the host.
 *
 * Files are registered by fd (Group.ServeFile) and served from that fd,
 * never read into memory: at /NAME and, by content, at /sha256/HEX. GET and
 * HEAD, one byte range per request (206, 416), 404 for anything else.
 *
 * libmicrohttpd runs in vmgrd's sd-event loop, without threads of its own:
 * its epoll fd is an I/O source of the loop and MHD_get_timeout() arms a
 * timer; both call MHD_run(). The SHA-256 of a new file is computed on the
 * worker pool, so a large file does not stall the loop.
 */

#include <systemd/sd-bus.h>

#include "group.h"

typedef struct FileServer FileServer;

/* The server's port, on the group's files address. */
#define FILESERVER_PORT 8080

/* Start the server of group g on its files address, which must exist (the
 * group's network is up). Returns 0 and the server, or -errno (logged). */
int fileserver_start(Group *g, FileServer **ret);

/* Stop the server: close its socket and every connection, forget every
 * file. A registration still being hashed fails with Busy once its hash is
 * done. Returns NULL. */
FileServer *fileserver_stop(FileServer *s);

/* Bus face (at the end of fileserver.c): Group.ServeFile, Group.UnserveFile and the
 * ServedFiles property; userdata is the Group. */
int group_method_serve_file(sd_bus_message *m, void *userdata, sd_bus_error *error);
int group_method_unserve_file(sd_bus_message *m, void *userdata, sd_bus_error *error);
int group_property_get_served_files(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error);
