#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "spec.h"
typedef struct VmgrDomainConfig { const char *group, *vm; unsigned vcpus, memory_mib; VmgrAccel accel; const char *emulator; const char *kernel, *initrd, *cmdline; const char *boot_disk; const char *boot_disk_format; const char *const *extra_disks; const char *const *extra_disk_formats; size_t n_extra_disks; bool ipv4; const char *console_log; const char *agent_socket; } VmgrDomainConfig;
int vmgr_domain_xml(const VmgrDomainConfig *c, char **ret);
int vmgr_domain_name(const char *group, const char *vm, char *buf, size_t size);
int vmgr_domain_uuid(const char *group, const char *vm, char buf[37]);
