/* The session's clock and counters: metrics registered by the tracing modules, counts per context, events. */
#include "counters.h"

#include <time.h>

#include "cct.h"
#include "errors.h"

double trace_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double trace_elapsed_ms(const struct trace *tr)
{
  return trace_now_ms() - tr->start_ms;
}

int trace_add_metric(struct trace *tr, const char *name, const char *unit)
{
  if (tr->cct || tr->nmetrics == TRACE_MAX_METRICS)
    return RS_E_LIMIT;
  tr->metrics[tr->nmetrics].name = name;
  tr->metrics[tr->nmetrics].unit = unit;
  tr->metric_titles[tr->nmetrics] = NULL;
  return (int)tr->nmetrics++;
}

int trace_add_ranked_metric(struct trace *tr, const char *name, const char *unit, const char *title)
{
  int m = trace_add_metric(tr, name, unit);
  if (m >= 0)
    tr->metric_titles[m] = title;
  return m;
}

void trace_count(struct trace *tr, uint32_t node, int metric, int64_t delta)
{
  cct_add(tr->cct, node, (size_t)metric, delta);
}

int64_t trace_metric_value(struct trace *tr, uint32_t node, int metric)
{
  return cct_get(tr->cct, node, (size_t)metric);
}
