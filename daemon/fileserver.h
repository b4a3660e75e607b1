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

#include <stddef.h>
#include <stdint.h>

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

/* Sentences the calls below write into their error buffer fit in this. */
#define FILESERVER_ERROR_MAX 1024

/* Called on the event loop once a file given to fileserver_serve() is
 * served (error 0; url is where the guests find it) or cannot be (error a
 * failure code, message a sentence for the user). */
typedef void (*fileserver_serve_done_t)(int error, const char *url, const char *message, void *userdata);

/* Serve the regular file open for reading at fd as name (which
 * served_name_check() accepted), once it is hashed on the worker pool. fd
 * is duplicated; the caller keeps its own. Returns 0, and then done is
 * called exactly once (also when the server stops first: -VMGR_ERR_BUSY);
 * or, without calling done, -VMGR_BUS_ERR_FILE_EXISTS (name served or being
 * hashed), -VMGR_ERR_LIMIT_EXCEEDED (FILESERVER_MAX_FILES), -EINVAL (not a
 * regular file, or not open for reading) or another -errno, with a sentence
 * in error (error_size bytes). */
int fileserver_serve(FileServer *s, const char *name, int fd, fileserver_serve_done_t done, void *userdata,
                     char *error, size_t error_size);

/* Stop serving name; downloads under way finish. Returns 0, or
 * -VMGR_ERR_BUSY (still being hashed) or -VMGR_BUS_ERR_FILE_NOT_FOUND with a
 * sentence in error (error_size bytes). */
int fileserver_unserve(FileServer *s, const char *name, char *error, size_t error_size);

/* Call cb for each served file, oldest first: its name, SHA-256 (64 hex
 * digits) and size. s may be NULL (no file). Returns 0, or the first
 * negative value cb returned. */
/* A restarted vmgrd serves a file again from the copy kept for it (in the
 * group's state directory) under its recorded name, SHA-256 and size,
 * without hashing it again. Returns 0, or -errno with error set (the copy
 * is gone or shorter than size: the file is no longer served). */
int fileserver_adopt(FileServer *s, const char *name, const char *sha256, uint64_t size, char *error,
                     size_t error_size);

typedef int (*fileserver_file_cb)(const char *name, const char *sha256, uint64_t size, void *userdata);
int fileserver_foreach_file(FileServer *s, fileserver_file_cb cb, void *userdata);
