/* Encoding and decoding of the compact capture records: unsigned LEB128 varints, signed deltas as zigzag
 * varints, against references both sides update alike (capture-codec.h). */
#include "capture-codec.h"

#include <string.h>

#include "buf.h"
#include "errors.h"

#define BODY_MAX 4096 /* no compact record body is longer (the longest, a stack definition, is checked) */

struct out {
  uint8_t *p, *end;
  int over;
};

static void put_u(struct out *o, uint64_t v)
{
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    if (v)
      b |= 0x80;
    if (o->p < o->end)
      *o->p++ = b;
    else
      o->over = 1;
  } while (v);
}

static uint64_t zig(uint64_t delta) { return (delta << 1) ^ (uint64_t)-(int64_t)(delta >> 63); }
static uint64_t unzig(uint64_t z) { return (z >> 1) ^ (uint64_t)-(int64_t)(z & 1); }

static void put_z(struct out *o, uint64_t v, uint64_t ref) { put_u(o, zig(v - ref)); }

static void put_bytes(struct out *o, const uint8_t *b, size_t n)
{
  if ((size_t)(o->end - o->p) < n) {
    o->over = 1;
    return;
  }
  memcpy(o->p, b, n);
  o->p += n;
}

static size_t uleb_len(uint64_t v)
{
  size_t n = 1;
  while (v >>= 7)
    n++;
  return n;
}

void capc_reset(struct capc_state *s) { memset(s, 0, sizeof *s); }

int capc_is_compact(int kind)
{
  return kind != CAP_REC_ENTRY && kind != CAP_REC_RETURN && kind != CAP_REC_STATS && kind != CAP_REC_PROCESS;
}

size_t cap_record_len(const uint8_t *p, size_t avail)
{
  if (avail < 1)
    return 0;
  if (!capc_is_compact(p[0])) {
    if (avail < CAP_REC_HEADER)
      return 0;
    uint32_t l = cap_get32(p + 4);
    return l >= CAP_REC_HEADER && l <= avail ? l : 0;
  }
  const uint8_t *q = p + 1, *end = p + avail;
  uint64_t body;
  if (rs_uleb(&q, end, &body) || body > (uint64_t)(end - q))
    return 0;
  return (size_t)(q - p) + (size_t)body;
}

/* Writes kind, the body's length and the body (built in tmp) into out[0..room). */
static size_t frame(uint8_t *out, size_t room, int kind, const struct out *body, const uint8_t *tmp)
{
  if (body->over)
    return 0;
  size_t blen = (size_t)(body->p - tmp), total = 1 + uleb_len(blen) + blen;
  if (total > room)
    return 0;
  struct out o = {out, out + room, 0};
  *o.p++ = (uint8_t)kind;
  put_u(&o, blen);
  memcpy(o.p, tmp, blen);
  return total;
}

static uint64_t *slot_ref(struct capc_state *s, uint32_t id, int ordinal)
{
  return ordinal < CAPC_SLOT_REGS ? &s->regs[id & (CAPC_SLOTS - 1)][ordinal] : NULL;
}

size_t capc_put_call(struct capc_state *s, uint8_t *out, size_t room, const struct capc_call *c)
{
  if (c->mem_len > CAPC_MAX_MEM || c->ret_mem_len > CAPC_MAX_MEM)
    return 0;
  uint8_t tmp[BODY_MAX];
  struct capc_state n = *s;
  struct out o = {tmp, tmp + sizeof tmp, 0};
  int flags = c->flags & (CAPC_F_PAIRED | CAPC_F_RET | CAPC_F_MEM_FAULT | CAPC_F_RA);
  if (c->mem_len)
    flags |= CAPC_F_MEM;
  if ((flags & CAPC_F_RET) && c->ret_mem_len)
    flags |= CAPC_F_RMEM;
  put_u(&o, (uint64_t)flags);
  put_z(&o, c->tid, n.tid);
  n.tid = c->tid;
  put_u(&o, c->id);
  put_z(&o, c->ns, n.ns);
  n.ns = c->ns;
  if (flags & CAPC_F_PAIRED) {
    put_z(&o, c->seq, n.seq);
    n.seq = c->seq;
  }
  put_u(&o, c->stack);
  put_z(&o, c->sp, n.sp);
  n.sp = c->sp;
  put_u(&o, c->regmask);
  int ordinal = 0;
  for (int r = 0; r < 64; r++) {
    if (!(c->regmask >> r & 1))
      continue;
    uint64_t *ref = slot_ref(&n, c->id, ordinal++);
    put_z(&o, c->regs[r], ref ? *ref : 0);
    if (ref)
      *ref = c->regs[r];
  }
  if (flags & CAPC_F_RA)
    put_u(&o, c->ra);
  if (flags & CAPC_F_MEM) {
    put_u(&o, c->mem_len);
    put_bytes(&o, c->mem, c->mem_len);
  }
  if (flags & CAPC_F_RET) {
    put_u(&o, c->ret_ns - c->ns);
    put_z(&o, c->retval, n.retval);
    n.retval = c->retval;
    if (flags & CAPC_F_RMEM) {
      put_u(&o, c->ret_mem_len);
      put_bytes(&o, c->ret_mem, c->ret_mem_len);
    }
  }
  size_t len = frame(out, room, CAP_REC_CALL, &o, tmp);
  if (len)
    *s = n;
  return len;
}

size_t capc_put_ret(struct capc_state *s, uint8_t *out, size_t room, const struct capc_ret *r)
{
  if (r->mem_len > CAPC_MAX_MEM)
    return 0;
  uint8_t tmp[64 + CAPC_MAX_MEM];
  struct out o = {tmp, tmp + sizeof tmp, 0};
  int flags = (r->flags & CAPC_F_MEM_FAULT) | (r->mem_len || (r->flags & CAPC_F_MEM) ? CAPC_F_MEM : 0);
  put_u(&o, (uint64_t)flags);
  put_z(&o, r->tid, s->tid);
  put_z(&o, r->seq, s->ret_seq);
  put_z(&o, r->ns, s->ns);
  put_z(&o, r->retval, s->retval);
  if (flags & CAPC_F_MEM) {
    put_u(&o, r->mem_len);
    put_bytes(&o, r->mem, r->mem_len);
  }
  size_t len = frame(out, room, CAP_REC_RET, &o, tmp);
  if (len) {
    s->tid = r->tid;
    s->ret_seq = r->seq;
    s->ns = r->ns;
    s->retval = r->retval;
  }
  return len;
}

size_t capc_put_stack(struct capc_state *s, uint8_t *out, size_t room, const uint64_t *pcs, size_t n,
                      int truncated)
{
  if (n == 0 || n > CAPC_MAX_FRAMES)
    return 0;
  /* The body is written in place after a length field of the longest size, then moved down if shorter. */
  size_t lenlen = uleb_len(CAPC_MAX_FRAMES * 10 + 16);
  if (room < 1 + lenlen)
    return 0;
  struct out o = {out + 1 + lenlen, out + room, 0};
  uint8_t *body = o.p;
  put_u(&o, truncated ? 1 : 0);
  put_u(&o, n);
  put_z(&o, pcs[0], s->pc0);
  for (size_t i = 1; i < n; i++)
    put_z(&o, pcs[i], pcs[i - 1]);
  if (o.over)
    return 0;
  size_t blen = (size_t)(o.p - body);
  struct out h = {out, out + 1 + lenlen, 0};
  *h.p++ = CAP_REC_STACK_DEF;
  put_u(&h, blen);
  if (h.p != body)
    memmove(h.p, body, blen);
  s->pc0 = pcs[0];
  s->nstacks++;
  return (size_t)(h.p - out) + blen;
}

size_t capc_put_reset(struct capc_state *s, uint8_t *out, size_t room)
{
  if (room < 2)
    return 0;
  out[0] = CAP_REC_RESET;
  out[1] = 0;
  capc_reset(s);
  return 2;
}

int capc_get(struct capc_state *s, const uint8_t **p, const uint8_t *end, struct capc_rec *r, uint64_t *pcs,
             size_t maxpcs)
{
  const uint8_t *q = *p;
  size_t len = cap_record_len(q, (size_t)(end - q));
  if (len == 0 || !capc_is_compact(q[0]))
    return RS_E_PROTO;
  memset(r, 0, sizeof *r);
  r->kind = q[0];
  uint64_t blen = 0;
  q++;
  rs_uleb(&q, end, &blen); /* cap_record_len checked it */
  const uint8_t *e = q + blen;
  uint64_t v, f;
#define U(dst)                   \
  do {                           \
    if (rs_uleb(&q, e, &v))        \
      return RS_E_PROTO;         \
    (dst) = v;                   \
  } while (0)
#define Z(dst, ref)              \
  do {                           \
    if (rs_uleb(&q, e, &v))        \
      return RS_E_PROTO;         \
    (dst) = (ref) + unzig(v);    \
  } while (0)
  struct capc_state n = *s;
  switch (r->kind) {
  case CAP_REC_CALL: {
    struct capc_call *c = &r->call;
    U(f);
    c->flags = (int)f;
    Z(c->tid, n.tid);
    n.tid = c->tid;
    U(c->id);
    Z(c->ns, n.ns);
    n.ns = c->ns;
    if (f & CAPC_F_PAIRED) {
      Z(c->seq, n.seq);
      n.seq = c->seq;
    }
    U(c->stack);
    Z(c->sp, n.sp);
    n.sp = c->sp;
    U(c->regmask);
    int ordinal = 0;
    for (int i = 0; i < 64; i++) {
      if (!(c->regmask >> i & 1))
        continue;
      uint64_t *ref = slot_ref(&n, c->id, ordinal++);
      Z(c->regs[i], ref ? *ref : 0);
      if (ref)
        *ref = c->regs[i];
    }
    if (f & CAPC_F_RA)
      U(c->ra);
    if (f & CAPC_F_MEM) {
      U(c->mem_len);
      if (c->mem_len > CAPC_MAX_MEM || c->mem_len > (size_t)(e - q))
        return RS_E_PROTO;
      c->mem = q;
      q += c->mem_len;
    }
    if (f & CAPC_F_RET) {
      U(v);
      c->ret_ns = c->ns + v;
      Z(c->retval, n.retval);
      n.retval = c->retval;
      if (f & CAPC_F_RMEM) {
        U(c->ret_mem_len);
        if (c->ret_mem_len > CAPC_MAX_MEM || c->ret_mem_len > (size_t)(e - q))
          return RS_E_PROTO;
        c->ret_mem = q;
        q += c->ret_mem_len;
      }
    }
    break;
  }
  case CAP_REC_RET: {
    struct capc_ret *t = &r->ret;
    U(f);
    t->flags = (int)f;
    Z(t->tid, n.tid);
    n.tid = t->tid;
    Z(t->seq, n.ret_seq);
    n.ret_seq = t->seq;
    Z(t->ns, n.ns);
    n.ns = t->ns;
    Z(t->retval, n.retval);
    n.retval = t->retval;
    if (f & CAPC_F_MEM) {
      U(t->mem_len);
      if (t->mem_len > CAPC_MAX_MEM || t->mem_len > (size_t)(e - q))
        return RS_E_PROTO;
      t->mem = q;
      q += t->mem_len;
    }
    break;
  }
  case CAP_REC_STACK_DEF: {
    U(f);
    r->truncated = (int)(f & 1);
    U(r->npcs);
    if (r->npcs == 0 || r->npcs > maxpcs || r->npcs > CAPC_MAX_FRAMES)
      return RS_E_PROTO;
    Z(pcs[0], n.pc0);
    for (size_t i = 1; i < r->npcs; i++)
      Z(pcs[i], pcs[i - 1]);
    n.pc0 = pcs[0];
    r->stack_id = n.nstacks++;
    break;
  }
  case CAP_REC_RESET:
    capc_reset(&n);
    q = e;
    break;
  default:
    q = e; /* a kind from a newer writer: skipped by its length */
    break;
  }
#undef U
#undef Z
  if (q != e)
    return RS_E_PROTO;
  *s = n;
  *p = e;
  return 1;
}
