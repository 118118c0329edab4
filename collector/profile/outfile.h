/* How an output file is replaced: a regular file (or a new one) is written beside it and renamed over it, so a
 * reader never sees half a file; a device, FIFO or socket (/dev/null, /dev/stdout, a pipe) is written in place,
 * because renaming over it would replace the device itself with a regular file. */
#ifndef RSPROF_OUTFILE_H
#define RSPROF_OUTFILE_H

/* 1 when path is a device, FIFO or socket (it is written in place), else 0 (a regular file, a new one, or
 * something a write fails on anyway, such as a directory). */
int outfile_in_place(const char *path);

#endif
