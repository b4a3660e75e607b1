/* Temporary stand-ins until the VM modules land; they refuse to run VMs. */
#include <errno.h>
#include <stdio.h>
#include "accel.h"
#include "disk.h"
int accel_resolve(const char *cache_dir, VmgrAccel requested, VmgrAccel *ret, char *reason) {
        snprintf(reason, 256, "VMs are not available in this build");
        return -ENOSYS;
}
int disk_base_get(const char *cache_dir, const char *image, VmgrDiskFormat format, char **ret_base, VmgrDiskFormat *ret_format, char *error) { return -ENOSYS; }
int disk_overlay_create(const char *base, VmgrDiskFormat base_format, const char *overlay, char *error) { return -ENOSYS; }
int disk_blank_create(const char *path, unsigned size_mib, char *error) { return -ENOSYS; }
