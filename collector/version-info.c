/* Build facts the collector reports about itself. */
#include "version.h"

const char col_version[] = RSPROF_VERSION;
