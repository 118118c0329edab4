/* Profile diffs for CI gates: contexts of two runs matched by their frames, ranked by how much they changed. */
#include "profile-diff.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "profile-strmap.h"
#include "summary.h"

/* Both runs' values per matched stack: base[key * nmetrics + m], likewise next. */
struct diff {
  const struct prof *base, *next;
  struct pstrmap keys;
  int64_t *vals[2];
  size_t cap;
  size_t *mi[2];   /* per metric of the union (base's order, then new ones): index in each profile, or -1 */
  const char **mname, **munit;
  size_t nm;
};

static int is_root(const struct prof *p, const struct prof_context *x)
{
  if (x->depth > 1 || !x->nlines)
    return 0;
  const char *name = p->lines[x->first_line].function;
  return strncmp(name, "THREAD[", 7) == 0 || (x->depth == 0 && strncmp(name, "PROCESS[", 8) == 0);
}

/* "outer;...;inner" of context c's frames, inline frames included, roots left out. */
static int stack_key(const struct prof *p, size_t c, struct rs_buf *b)
{
  size_t chain[4096], n = 0;
  rs_buf_reset(b);
  for (size_t i = c; i != PROF_NONE && n < 4096; i = p->ctx[i].parent)
    chain[n++] = i;
  int first = 1;
  while (n-- > 0) {
    const struct prof_context *x = &p->ctx[chain[n]];
    if (is_root(p, x))
      continue;
    for (size_t k = x->nlines; k-- > 0;) {
      const struct prof_line *l = &p->lines[x->first_line + k];
      const char *name = l->function[0] ? l->function : l->system_name;
      if ((!first && rs_buf_putc(b, ';')) || rs_buf_puts(b, name))
        return -ENOMEM;
      first = 0;
    }
  }
  return rs_buf_putc(b, '\0');
}

static int add_values(struct diff *d, int side, const struct prof *p, struct rs_buf *b)
{
  if (d->nm == 0)
    return 0;
  for (size_t c = 0; c < p->nctx; c++) {
    const int64_t *self = &p->self[c * p->nmetrics];
    int any = 0;
    for (size_t m = 0; m < p->nmetrics; m++)
      any |= self[m] != 0;
    if (!any)
      continue;
    int rc = stack_key(p, c, b);
    uint32_t k;
    if (rc || (rc = pstrmap_intern(&d->keys, (const char *)b->data, &k, NULL)))
      return rc;
    if (k >= d->cap) {
      size_t cap = d->cap ? d->cap * 2 : 256;
      while (cap <= k)
        cap *= 2;
      for (int s = 0; s < 2; s++) {
        int64_t *v = realloc(d->vals[s], cap * d->nm * sizeof *v);
        if (!v)
          return -ENOMEM;
        memset(v + d->cap * d->nm, 0, (cap - d->cap) * d->nm * sizeof *v);
        d->vals[s] = v;
      }
      d->cap = cap;
    }
    for (size_t m = 0; m < d->nm; m++)
      if (d->mi[side][m] != (size_t)-1)
        d->vals[side][k * d->nm + m] += self[d->mi[side][m]];
  }
  return 0;
}

/* The union of both profiles' metrics, by name. */
static int match_metrics(struct diff *d)
{
  size_t most = d->base->nmetrics + d->next->nmetrics;
  d->mname = calloc(most ? most : 1, sizeof *d->mname);
  d->munit = calloc(most ? most : 1, sizeof *d->munit);
  d->mi[0] = calloc(most ? most : 1, sizeof *d->mi[0]);
  d->mi[1] = calloc(most ? most : 1, sizeof *d->mi[1]);
  if (!d->mname || !d->munit || !d->mi[0] || !d->mi[1])
    return -ENOMEM;
  const struct prof *ps[2] = {d->base, d->next};
  for (int s = 0; s < 2; s++)
    for (size_t m = 0; m < ps[s]->nmetrics; m++) {
      size_t u = 0;
      while (u < d->nm && strcmp(d->mname[u], ps[s]->metric_name[m]) != 0)
        u++;
      if (u == d->nm) {
        d->mname[u] = ps[s]->metric_name[m];
        d->munit[u] = ps[s]->metric_unit[m];
        d->mi[0][u] = d->mi[1][u] = (size_t)-1;
        d->nm++;
      }
      d->mi[s][u] = m;
    }
  return 0;
}

struct change {
  uint32_t key;
  int64_t base, next;
};

static int by_change_desc(const void *a, const void *b)
{
  const struct change *x = a, *y = b;
  int64_t dx = llabs(x->next - x->base), dy = llabs(y->next - y->base);
  if (dx != dy)
    return dx > dy ? -1 : 1;
  return x->key < y->key ? -1 : x->key > y->key;
}

/* Relative change in percent; infinite for growth from zero. */
static double percent(int64_t base, int64_t next)
{
  if (base == 0)
    return next == 0 ? 0 : (next > 0 ? INFINITY : -INFINITY);
  return 100.0 * (double)(next - base) / fabs((double)base);
}

static void put_percent(FILE *out, double pct)
{
  if (isinf(pct))
    fputs(pct > 0 ? "new" : "gone", out);
  else
    fprintf(out, "%+.1f%%", pct);
}

static void json_percent(struct json_out *j, const char *key, double pct)
{
  json_key(j, key);
  if (isinf(pct))
    json_null(j);
  else
    json_double(j, pct);
}

int prof_diff(FILE *out, FILE *err, const struct prof *base, const struct prof *next, int json, size_t top,
              const struct diff_gate *gates, size_t ngates, int *failed)
{
  struct diff d = {.base = base, .next = next};
  struct rs_buf key;
  struct change *ch = NULL;
  int64_t *totals = NULL;
  rs_buf_init(&key, (size_t)1 << 24);
  pstrmap_init(&d.keys);
  *failed = 0;
  int rc = match_metrics(&d);
  if (!rc)
    rc = add_values(&d, 0, base, &key);
  if (!rc)
    rc = add_values(&d, 1, next, &key);
  size_t nkeys = d.keys.count;
  if (!rc && !(ch = malloc((nkeys ? nkeys : 1) * sizeof *ch)))
    rc = -ENOMEM;
  if (!rc && !(totals = calloc(2 * (d.nm ? d.nm : 1), sizeof *totals)))
    rc = -ENOMEM;
  for (size_t g = 0; !rc && g < ngates; g++) {
    size_t m = 0;
    while (m < d.nm && strcmp(d.mname[m], gates[g].metric) != 0)
      m++;
    if (m == d.nm) {
      fprintf(err, "rsprof-collector report: --fail-on-growth names %s, which neither profile has\n",
              gates[g].metric);
      rc = RS_E_BAD_ARG;
    }
  }
  if (rc)
    goto out;

  struct json_out j;
  if (json) {
    json_init(&j, out, 1);
    json_begin_object(&j);
    json_key(&j, "metrics");
    json_begin_array(&j);
  }
  for (size_t m = 0; m < d.nm; m++) {
    size_t n = 0;
    for (uint32_t k = 0; k < nkeys; k++) {
      int64_t b = d.vals[0][(size_t)k * d.nm + m], v = d.vals[1][(size_t)k * d.nm + m];
      totals[2 * m] += b;
      totals[2 * m + 1] += v;
      if (b != v)
        ch[n++] = (struct change){k, b, v};
    }
    qsort(ch, n, sizeof *ch, by_change_desc);
    int64_t tb = totals[2 * m], tn = totals[2 * m + 1];
    if (json) {
      json_begin_object(&j);
      json_kv_string(&j, "name", d.mname[m]);
      json_kv_string(&j, "unit", d.munit[m]);
      json_kv_int(&j, "base", tb);
      json_kv_int(&j, "new", tn);
      json_kv_int(&j, "delta", tn - tb);
      json_percent(&j, "percent", percent(tb, tn));
      json_key(&j, "contexts");
      json_begin_array(&j);
    } else {
      fprintf(out, "%s (%s): base %" PRId64 ", new %" PRId64 ", %+" PRId64 " (", d.mname[m], d.munit[m], tb, tn,
              tn - tb);
      put_percent(out, percent(tb, tn));
      fputs(")\n", out);
    }
    for (size_t i = 0; i < n && i < top; i++) {
      const char *stack = d.keys.keys[ch[i].key];
      if (json) {
        json_begin_object(&j);
        json_kv_string(&j, "stack", stack);
        json_kv_int(&j, "base", ch[i].base);
        json_kv_int(&j, "new", ch[i].next);
        json_kv_int(&j, "delta", ch[i].next - ch[i].base);
        json_percent(&j, "percent", percent(ch[i].base, ch[i].next));
        json_end_object(&j);
      } else {
        fprintf(out, "  %+" PRId64 " (", ch[i].next - ch[i].base);
        put_percent(out, percent(ch[i].base, ch[i].next));
        fprintf(out, ", %" PRId64 " -> %" PRId64 ")  %s\n", ch[i].base, ch[i].next, stack);
      }
    }
    if (json) {
      json_end_array(&j);
      json_end_object(&j);
    } else if (n == 0) {
      fputs("  no context changed\n", out);
    }
  }
  if (json) {
    json_end_array(&j);
    json_end_object(&j);
    if (json_finish(&j))
      rc = -EIO;
    fputc('\n', out);
  }
  for (size_t g = 0; g < ngates; g++) {
    size_t m = 0;
    while (strcmp(d.mname[m], gates[g].metric) != 0)
      m++;
    double pct = percent(totals[2 * m], totals[2 * m + 1]);
    if (pct > gates[g].percent) {
      fprintf(err, "rsprof-collector report: --fail-on-growth %s:%g exceeded: %s grew from %" PRId64 " to %" PRId64
                   " (", gates[g].metric, gates[g].percent, gates[g].metric, totals[2 * m], totals[2 * m + 1]);
      put_percent(err, pct);
      fputs(")\n", err);
      *failed = 1;
    }
  }
  if (!rc && (fflush(out) != 0 || ferror(out)))
    rc = -EIO;
out:
  free(ch);
  free(totals);
  free(d.vals[0]);
  free(d.vals[1]);
  free(d.mi[0]);
  free(d.mi[1]);
  free(d.mname);
  free(d.munit);
  pstrmap_free(&d.keys);
  rs_buf_free(&key);
  return rc;
}
