/* Unit tests of vFile reply parsing: results, attachments, and errno values that a server may send but that
 * cannot be negated into a meaningful error code. */
#include <errno.h>
#include <string.h>

#include "errors.h"
#include "rsp-client.h"
#include "test.h"

static int parse(const char *reply, long long *v, const char **data, size_t *dlen)
{
  return rspc_parse_vfile_reply(reply, strlen(reply), v, data, dlen);
}

TEST(vfile_reply_result_and_attachment)
{
  long long v = -1;
  const char *data = NULL;
  size_t dlen = 99;
  ASSERT_EQ(parse("F3;abc", &v, &data, &dlen), 0);
  ASSERT_EQ((int)v, 3);
  ASSERT_EQ((int)dlen, 3);
  ASSERT_MEM_EQ(data, "abc", 3);
  ASSERT_EQ(parse("F0", &v, &data, &dlen), 0);
  ASSERT_EQ((int)v, 0);
  ASSERT_EQ((int)dlen, 0);
  ASSERT_EQ(parse("", &v, NULL, NULL), RS_E_UNSUPPORTED);
  ASSERT_EQ(parse("OK", &v, NULL, NULL), RS_E_PROTO);
  ASSERT_EQ(parse("F8000000000000000", &v, NULL, NULL), RS_E_PROTO); /* no room in a signed result */
}

TEST(vfile_reply_errno_as_sent)
{
  long long v;
  ASSERT_EQ(parse("F-1,2", &v, NULL, NULL), -ENOENT);
  ASSERT_EQ(parse("F-1,d", &v, NULL, NULL), -EACCES);
  ASSERT_EQ(parse("F-1", &v, NULL, NULL), -EIO); /* no errno at all */
}

/* -2147483648 cannot be negated in an int; neither may a huge or zero errno turn into success, a truncated
 * errno or one of the project's own codes. */
TEST(vfile_reply_errno_out_of_range_is_eio)
{
  long long v;
  ASSERT_EQ(parse("F-1,80000000", &v, NULL, NULL), -EIO);
  ASSERT_EQ(parse("F-1,ffffffff", &v, NULL, NULL), -EIO);
  ASSERT_EQ(parse("F-1,100000002", &v, NULL, NULL), -EIO); /* not ENOENT after truncation */
  ASSERT_EQ(parse("F-1,0", &v, NULL, NULL), -EIO);
  ASSERT_EQ(parse("F-1,2710", &v, NULL, NULL), -EIO); /* 10000 would read as a project code */
  ASSERT_EQ(parse("F-1,zz", &v, NULL, NULL), -EIO);
}
