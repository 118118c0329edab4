/* Hexadecimal encoding and parsing. */
#include "hex.h"

#include "errors.h"

static const char hex_chars[] = "0123456789abcdef";

int hex_digit(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

void hex_encode(char *out, const void *in, size_t n)
{
  const uint8_t *src = in;
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex_chars[src[i] >> 4];
    out[2 * i + 1] = hex_chars[src[i] & 15];
  }
}

int hex_decode(void *out, const char *in, size_t n)
{
  uint8_t *dst = out;
  for (size_t i = 0; i < n; i++) {
    int hi = hex_digit((unsigned char)in[2 * i]);
    int lo = hi < 0 ? -1 : hex_digit((unsigned char)in[2 * i + 1]);
    if (lo < 0)
      return RS_E_BAD_HEX;
    dst[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

int hex_parse_u64(const char **p, uint64_t *value)
{
  const char *s = *p;
  uint64_t v = 0;
  int digits = 0;
  int d;
  while ((d = hex_digit((unsigned char)*s)) >= 0) {
    if (++digits > 16)
      return RS_E_BAD_HEX;
    v = v << 4 | (uint64_t)d;
    s++;
  }
  if (digits == 0)
    return RS_E_BAD_HEX;
  *value = v;
  *p = s;
  return 0;
}

int hex_parse_u64_until(const char **p, uint64_t *value, char end)
{
  const char *s = *p;
  uint64_t v;
  if (hex_parse_u64(&s, &v) || *s != end)
    return RS_E_BAD_HEX;
  *value = v;
  *p = s + 1;
  return 0;
}

void hex_encode_le(char *out, uint64_t value, size_t size)
{
  for (size_t i = 0; i < size; i++) {
    uint8_t byte = i < 8 ? (uint8_t)(value >> (8 * i)) : 0;
    out[2 * i] = hex_chars[byte >> 4];
    out[2 * i + 1] = hex_chars[byte & 15];
  }
}

int hex_decode_le(const char *in, size_t size, uint64_t *value)
{
  uint64_t v = 0;
  for (size_t i = 0; i < size; i++) {
    int hi = hex_digit((unsigned char)in[2 * i]);
    int lo = hi < 0 ? -1 : hex_digit((unsigned char)in[2 * i + 1]);
    if (lo < 0)
      return RS_E_BAD_HEX;
    if (i < 8)
      v |= (uint64_t)(hi << 4 | lo) << (8 * i);
  }
  *value = v;
  return 0;
}
