/* A fake traced process for fuzzing the agent's RSP server: the inferior.h interface over a made-up
 * program in plain memory, a ptrace() that only knows the fake threads, and file access kept inside a
 * scratch folder, so no packet can reach a real process or a file outside that folder. */
#ifndef RSPROF_FUZZ_FAKE_INFERIOR_H
#define RSPROF_FUZZ_FAKE_INFERIOR_H

/* The fake process's id: above the kernel's largest pid_max (2^22), so it never names a real process. */
#define FAKE_PID 0x7fff0000

/* Prepares the scratch folder dir: files for vFile ("small", "empty", "big", "bin", "dir", "link") and
 * the fake /proc entries. Relative paths the agent opens resolve there. Call once. Returns 0 or -errno. */
int fake_setup(const char *dir);

/* Forgets all fake process state (memory image, threads, counters); call before each input. */
void fake_reset(void);

/* While on, open() and readlink() in the agent's code see only the scratch folder and the fake
 * process's /proc entries. libFuzzer's own file access happens with it off. */
void fake_sandbox(int on);

#endif
