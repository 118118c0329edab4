/* Messages for the error codes in errors.h. */
#include "errors.h"

#include <string.h>

const char *rs_strerror(int code)
{
  switch (code) {
  case 0:
    return "success";
#define RS_ERROR_CASE(name, msg) \
  case RS_E_##name:              \
    return msg;
    RS_ERRORS(RS_ERROR_CASE)
#undef RS_ERROR_CASE
  default:
    break;
  }
  if (code < 0 && code > -RS_E_BASE)
    return strerror(-code);
  return "unknown error";
}
