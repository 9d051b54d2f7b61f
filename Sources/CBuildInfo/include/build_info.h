#ifndef DEVSTATUSD_BUILD_INFO_H
#define DEVSTATUSD_BUILD_INFO_H

/// The git revision the binary was built from ("unknown" when built without `make`).
const char *build_info_revision(void);
/// When it was built, RFC 3339 UTC ("unknown" when built without `make`).
const char *build_info_date(void);

#endif
