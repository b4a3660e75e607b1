#pragma once
#include "spec.h"
int disk_base_get(const char *cache_dir, const char *image, VmgrDiskFormat format, char **ret_base, VmgrDiskFormat *ret_format, char *error);
int disk_overlay_create(const char *base, VmgrDiskFormat base_format, const char *overlay, char *error);
int disk_blank_create(const char *path, unsigned size_mib, char *error);
