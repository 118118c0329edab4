/* Whether an output path is written in place or beside and renamed over (see outfile.h). */
#include "outfile.h"

#include <sys/stat.h>

int outfile_in_place(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}
