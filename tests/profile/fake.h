/* A fake symbolizer and a hand-built calling-context tree shared by the profile tests, with the results
 * the tests expect written out by hand (not computed by the code under test). */
#ifndef RSPROF_TEST_PROFILE_FAKE_H
#define RSPROF_TEST_PROFILE_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "cct.h"
#include "profile-write.h"

/* Symbolizes the fixed pcs below; counts calls per pc in fake_calls(). */
int fake_symbolize(void *ctx, uint64_t pc, struct sym_frame *frames, int max, int *n);
/* How many times fake_symbolize saw pc. */
int fake_calls(uint64_t pc);
void fake_reset_calls(void);

/* The build-id fake_symbolize gives /bin/app's frames (libfoo's have none); offsets are pc - 0x1000 in
 * /bin/app and pc - 0x5000 in libfoo. */
#define FAKE_APP_BUILD_ID "0123456789abcdef0123456789abcdef01234567"

extern const struct profile_metric fake_metrics[2]; /* allocs (count), bytes (bytes) */

/* One recorded event of the hand-built tree. */
struct fake_event {
  uint32_t tid;
  int truncated;
  uint64_t pcs[4]; /* innermost first, 0-terminated */
  int64_t allocs, bytes;
};
extern const struct fake_event fake_events[];
extern const size_t fake_nevents;

/* Builds the tree of fake_events (each event inserted and counted). The caller frees it. */
struct cct *fake_tree(void);

/* The folded lines the tree must give, by metric (allocs, then bytes), sorted; NULL-terminated. */
extern const char *const fake_folded_allocs[];
extern const char *const fake_folded_bytes[];

/* Makes a fresh temporary directory (mkdtemp) and returns path/name inside it (static buffer). */
const char *fake_tmp_path(const char *name);

#endif
