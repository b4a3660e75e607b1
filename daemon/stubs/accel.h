#pragma once
#include "spec.h"
int accel_resolve(const char *cache_dir, VmgrAccel requested, VmgrAccel *ret, char *reason);
