/* Translation between Linux signal numbers and gdb's target-independent numbering used on the wire. */
#include <signal.h>

#include "signals.h"

/* gdb numbers for Linux signals 1..31 (index = Linux number). */
static const unsigned char to_gdb[32] = {
    0,  1,  2,  3,  4,  5,  6,  10, 8,  9,  30, 11, 31, 13, 14, 15,
    0,  20, 19, 17, 18, 21, 22, 16, 24, 25, 26, 27, 28, 23, 32, 12,
};

int agent_sig_to_gdb(int sig)
{
  if (sig > 0 && sig < 32)
    return to_gdb[sig];
  if (sig == 32)
    return 77; /* GDB_SIGNAL_REALTIME_32 */
  if (sig >= 33 && sig <= 63)
    return 45 + (sig - 33); /* GDB_SIGNAL_REALTIME_33.. */
  if (sig == 64)
    return 78;
  return 0;
}

int agent_sig_from_gdb(int gsig)
{
  if (gsig <= 0)
    return 0;
  for (int i = 1; i < 32; i++)
    if (to_gdb[i] == gsig)
      return i;
  if (gsig == 77)
    return 32;
  if (gsig >= 45 && gsig <= 75)
    return 33 + (gsig - 45);
  if (gsig == 78)
    return 64;
  return -1;
}
