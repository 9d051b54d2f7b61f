// Build facts for `devstatusd --version` and the devstatusd_build_info metric. `make` (scripts/build-info.sh)
// writes build_info_values.h beside this file (not in git) and touches this file when the values change; a plain
// `swift build` on a fresh clone finds no such header and compiles the fallbacks below.
#include "build_info.h"

#if __has_include("build_info_values.h")
#include "build_info_values.h"
#endif

#ifndef DEVSTATUSD_REVISION
#define DEVSTATUSD_REVISION "unknown"
#endif
#ifndef DEVSTATUSD_BUILD_DATE
#define DEVSTATUSD_BUILD_DATE "unknown"
#endif

const char *build_info_revision(void) { return DEVSTATUSD_REVISION; }
const char *build_info_date(void) { return DEVSTATUSD_BUILD_DATE; }
