/* Hexadecimal encoding and parsing as used by RSP packets. */
#ifndef RSPROF_HEX_H
#define RSPROF_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Value of one hex digit, or -1. */
int hex_digit(int c);
/* Writes 2n lowercase hex digits for n bytes into out (no NUL is added). */
void hex_encode(char *out, const void *in, size_t n);
/* Decodes exactly 2n hex digits from in into n bytes. Returns 0 or RS_E_BAD_HEX. */
int hex_decode(void *out, const char *in, size_t n);
/* Parses a hex number at *p (at least one digit, at most 16), advancing *p past it.
 * Returns 0 or RS_E_BAD_HEX (on no digits or overflow; *p is then unchanged). */
int hex_parse_u64(const char **p, uint64_t *value);
/* Like hex_parse_u64 but the number must be followed by the character `end`, which is skipped too. */
int hex_parse_u64_until(const char **p, uint64_t *value, char end);
/* Writes value as size bytes of little-endian hex (2*size digits, no NUL). */
void hex_encode_le(char *out, uint64_t value, size_t size);
/* Decodes size bytes of target little-endian hex into a value. Returns 0 or RS_E_BAD_HEX. */
int hex_decode_le(const char *in, size_t size, uint64_t *value);

#endif
