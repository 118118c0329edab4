/* Translation between Linux signal numbers and gdb's target-independent numbering used on the wire. */
#ifndef RSPROF_AGENT_SIGNALS_H
#define RSPROF_AGENT_SIGNALS_H

/* Host (Linux) signal number to gdb's numbering; 0 when gdb has no number for it. */
int agent_sig_to_gdb(int sig);
/* gdb's numbering to the host's: 0 for 0 (no signal), -1 for a number that names no Linux signal
 * (beyond gdb's table, or a signal Linux lacks such as GDB_SIGNAL_EMT). */
int agent_sig_from_gdb(int gsig);

#endif
