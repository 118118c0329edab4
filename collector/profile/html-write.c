/* HTML report: one self-contained page (no network access) with the totals, the top contexts of each metric,
 * the leaks with their stacks, and an interactive icicle graph per metric with zoom and search. */
#include "html-write.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile-strmap.h"

/* How many contexts the page lists per metric, and how many leaks. */
enum { TOP_CONTEXTS = 10, TOP_LEAKS = 20 };

/* A frame of the merged tree the icicle graph draws: contexts whose frames print the same share a node. */
struct hnode {
  size_t parent;       /* PROF_NONE for a root */
  const struct prof_line *line;
};

struct html {
  const struct prof *p;
  FILE *out;
  struct hnode *nodes;
  size_t nnodes, cap;
  size_t *node_of_ctx;  /* the innermost frame's node, per context */
  int64_t *self;        /* nnodes * nmetrics */
  struct pstrmap keys;  /* "parent:name" -> node index */
};

static void put_html(FILE *f, const char *s)
{
  for (; s && *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    default: fputc(*s, f);
    }
  }
}

/* A JSON string that is also safe inside <script>: no "</script>" can appear. */
static void put_js_string(FILE *f, const char *s)
{
  fputc('"', f);
  for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
    if (*c == '"' || *c == '\\')
      fprintf(f, "\\%c", *c);
    else if (*c < 0x20 || *c == '<' || *c == '>' || *c == '&')
      fprintf(f, "\\u%04x", *c);
    else
      fputc(*c, f);
  }
  fputc('"', f);
}

static const char *line_name(const struct prof_line *l)
{
  return l->function[0] ? l->function : l->system_name[0] ? l->system_name : "??";
}

/* The node for line under parent, made when new. */
static int node_for(struct html *h, size_t parent, const struct prof_line *l, size_t *out)
{
  const char *name = line_name(l);
  size_t klen = strlen(name) + 24;
  char *key = malloc(klen);
  if (!key)
    return -ENOMEM;
  snprintf(key, klen, "%zu:%s", parent == PROF_NONE ? 0 : parent + 1, name);
  uint32_t idx;
  int added, rc = pstrmap_intern(&h->keys, key, &idx, &added);
  free(key);
  if (rc)
    return rc;
  if (added) {
    if (h->nnodes == h->cap) {
      size_t cap = h->cap ? h->cap * 2 : 256;
      struct hnode *n = realloc(h->nodes, cap * sizeof *n);
      if (!n)
        return -ENOMEM;
      h->nodes = n;
      h->cap = cap;
    }
    h->nodes[h->nnodes].parent = parent;
    h->nodes[h->nnodes].line = l;
    h->nnodes++;
  }
  *out = idx;
  return 0;
}

/* Expands every context's inline chain into frames (caller first) and merges equal paths. */
static int build_tree(struct html *h)
{
  const struct prof *p = h->p;
  h->node_of_ctx = malloc((p->nctx ? p->nctx : 1) * sizeof *h->node_of_ctx);
  if (!h->node_of_ctx)
    return -ENOMEM;
  for (size_t c = 0; c < p->nctx; c++) { /* parents come first */
    const struct prof_context *x = &p->ctx[c];
    size_t at = x->parent == PROF_NONE ? PROF_NONE : h->node_of_ctx[x->parent];
    for (size_t k = x->nlines; k-- > 0;) {
      int rc = node_for(h, at, &p->lines[x->first_line + k], &at);
      if (rc)
        return rc;
    }
    h->node_of_ctx[c] = at;
  }
  h->self = calloc((h->nnodes ? h->nnodes : 1) * (p->nmetrics ? p->nmetrics : 1), sizeof *h->self);
  if (!h->self)
    return -ENOMEM;
  for (size_t c = 0; c < p->nctx; c++)
    if (h->node_of_ctx[c] != PROF_NONE)
      for (size_t m = 0; m < p->nmetrics; m++)
        h->self[h->node_of_ctx[c] * p->nmetrics + m] += p->self[c * p->nmetrics + m];
  return 0;
}

static int64_t total(const struct prof *p, size_t m)
{
  int64_t t = 0;
  for (size_t c = 0; c < p->nctx; c++)
    t += p->self[c * p->nmetrics + m];
  return t;
}

/* A context's stack, outermost first, as an ordered list. */
static void put_stack(struct html *h, size_t ctx)
{
  const struct prof *p = h->p;
  size_t chain[1024], n = 0;
  for (size_t c = ctx; c != PROF_NONE && n < 1024; c = p->ctx[c].parent)
    chain[n++] = c;
  fputs("<ol class=\"stack\">", h->out);
  while (n-- > 0) {
    const struct prof_context *x = &p->ctx[chain[n]];
    for (size_t k = x->nlines; k-- > 0;) {
      const struct prof_line *l = &p->lines[x->first_line + k];
      fputs("<li><span class=\"fn\">", h->out);
      put_html(h->out, line_name(l));
      fputs("</span>", h->out);
      if (l->file) {
        fputs(" <span class=\"src\">", h->out);
        put_html(h->out, l->file);
        if (l->line > 0)
          fprintf(h->out, ":%" PRId64, l->line);
        fputs("</span>", h->out);
      }
      if (k > 0)
        fputs(" <span class=\"inl\">(inlined)</span>", h->out);
      fputs("</li>", h->out);
    }
  }
  fputs("</ol>\n", h->out);
}

/* The innermost frames of a context, innermost first, joined by arrows: what a listing shows at a glance. */
static void put_callers(struct html *h, size_t ctx, int most)
{
  const struct prof *p = h->p;
  int shown = 0;
  for (size_t c = ctx; c != PROF_NONE && shown < most; c = p->ctx[c].parent) {
    const struct prof_context *x = &p->ctx[c];
    for (size_t k = 0; k < x->nlines && shown < most; k++, shown++) {
      if (shown)
        fputs(" &larr; ", h->out);
      put_html(h->out, line_name(&p->lines[x->first_line + k]));
    }
  }
}

struct ranked {
  size_t ctx;
  int64_t value;
};

static int by_value_desc(const void *a, const void *b)
{
  const struct ranked *x = a, *y = b;
  if (x->value != y->value)
    return x->value > y->value ? -1 : 1;
  return x->ctx < y->ctx ? -1 : x->ctx > y->ctx;
}

/* The contexts with the largest self value of metric m, largest first. */
static int put_top(struct html *h, size_t m, size_t limit, const char *cls)
{
  const struct prof *p = h->p;
  struct ranked *r = malloc((p->nctx ? p->nctx : 1) * sizeof *r);
  if (!r)
    return -ENOMEM;
  size_t n = 0;
  for (size_t c = 0; c < p->nctx; c++)
    if (p->self[c * p->nmetrics + m] > 0)
      r[n++] = (struct ranked){c, p->self[c * p->nmetrics + m]};
  qsort(r, n, sizeof *r, by_value_desc);
  int64_t sum = total(p, m);
  fprintf(h->out, "<ol class=\"%s\">\n", cls);
  for (size_t i = 0; i < n && i < limit; i++) {
    fprintf(h->out, "<li><details><summary><b class=\"val\">%" PRId64 "</b> %s (%.1f%%) in <span class=\"fn\">",
            r[i].value, p->metric_unit[m], sum ? 100.0 * (double)r[i].value / (double)sum : 0.0);
    put_callers(h, r[i].ctx, 3);
    fputs("</span></summary>", h->out);
    put_stack(h, r[i].ctx);
    fputs("</details></li>\n", h->out);
  }
  if (n == 0)
    fputs("<li class=\"none\">none</li>\n", h->out);
  fputs("</ol>\n", h->out);
  free(r);
  return 0;
}

static const char STYLE[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}"
    "h2{font-size:1.15em;margin-top:1.5em;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #eee}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".fn{font-family:ui-monospace,monospace}.src{color:#666;font-size:.9em}.inl{color:#999;font-size:.85em}"
    "ol.stack{margin:.3em 0 .6em;padding-left:2em;font-size:.92em}summary{cursor:pointer}"
    "#controls{margin:.5em 0}#controls>*{margin-right:.6em}"
    "#chart{position:relative;width:100%;overflow:hidden;border:1px solid #ddd;background:#fafafa}"
    ".cell{position:absolute;height:17px;line-height:17px;font:11px ui-monospace,monospace;overflow:hidden;"
    "white-space:nowrap;box-sizing:border-box;border:1px solid #fff;padding:0 3px;cursor:pointer;color:#000}"
    ".cell.hit{background:#e0f !important;color:#fff}#tip{min-height:1.4em;color:#333;margin:.3em 0}";

/* The icicle graph: inclusive values from the nodes' self values, each node a box as wide as its share of
 * the focused node; click zooms, the search colours matching frames and sums them. */
static const char SCRIPT[] =
    "(function(){'use strict';\n"
    "var D=RSPROF,N=D.nodes,M=D.metrics.length,kids=N.map(function(){return[]});\n"
    "N.forEach(function(n,i){if(n[0]>=0)kids[n[0]].push(i)});\n"
    "var incl=N.map(function(n){return n.slice(3).map(Number)});\n"
    "for(var i=N.length-1;i>=0;i--){var p=N[i][0];if(p>=0)for(var m=0;m<M;m++)incl[p][m]+=incl[i][m];}\n"
    "var roots=[];N.forEach(function(n,i){if(n[0]<0)roots.push(i)});\n"
    "var chart=document.getElementById('chart'),tip=document.getElementById('tip'),\n"
    " sel=document.getElementById('metric'),search=document.getElementById('search'),focus=-1;\n"
    "D.metrics.forEach(function(m,k){var o=document.createElement('option');o.value=k;\n"
    " o.textContent=m.name+' ('+m.unit+')';sel.appendChild(o)});\n"
    "function colour(name){var h=0;for(var i=0;i<name.length;i++)h=(h*31+name.charCodeAt(i))>>>0;\n"
    " return 'hsl('+(20+h%40)+','+(60+h%30)+'%,'+(62+h%15)+'%)'}\n"
    "function path(i){var p=[];while(i>=0){p.push(i);i=N[i][0]}return p}\n"
    "function draw(){var m=+sel.value,W=chart.clientWidth||1000,H=18,q=search.value,re=null;\n"
    " if(q){try{re=new RegExp(q,'i')}catch(e){re=null}}\n"
    " chart.textContent='';var tops=focus>=0?[focus]:roots,sum=0;tops.forEach(function(r){sum+=incl[r][m]});\n"
    " var depth0=focus>=0?path(focus).length-1:0,maxd=0,matched=0,frag=document.createDocumentFragment();\n"
    " if(focus>=0){var anc=path(focus).slice(1).reverse();anc.forEach(function(a,d){box(a,0,W,d,m,re,frag)})}\n"
    " function walk(i,x,w,d){if(w<0.5)return;maxd=Math.max(maxd,d);\n"
    "  if(re&&re.test(N[i][1]))matched+=incl[i][m]-inner(i,m,re);box(i,x,w,d,m,re,frag);\n"
    "  var cx=x;kids[i].forEach(function(k){var kw=incl[i][m]?w*incl[k][m]/incl[i][m]:0;walk(k,cx,kw,d+1);cx+=kw})}\n"
    " var x=0;tops.forEach(function(r){var w=sum?W*incl[r][m]/sum:0;walk(r,x,w,depth0);x+=w});\n"
    " chart.appendChild(frag);chart.style.height=((maxd+1)*H+4)+'px';\n"
    " tip.textContent=re?('matched: '+matched+' '+D.metrics[m].unit+' of '+D.metrics[m].total):\n"
    "  (focus>=0?'zoomed: click the top frame to go back':'click a frame to zoom')}\n"
    "function inner(i,m,re){var s=0;kids[i].forEach(function(k){s+=re.test(N[k][1])?incl[k][m]:inner(k,m,re)});return s}\n"
    "function box(i,x,w,d,m,re,frag){var e=document.createElement('div');e.className='cell'+(re&&re.test(N[i][1])?' hit':'');\n"
    " e.style.left=x+'px';e.style.width=Math.max(w,1)+'px';e.style.top=(d*18+2)+'px';e.style.background=colour(N[i][1]);\n"
    " e.textContent=w>30?N[i][1]:'';e.dataset.name=N[i][1];e.title=N[i][1]+(N[i][2]?' '+N[i][2]:'')+': '+incl[i][m]+' '+D.metrics[m].unit;\n"
    " e.onclick=function(){focus=(focus===i)?N[i][0]:i;draw()};frag.appendChild(e)}\n"
    "sel.onchange=draw;search.oninput=draw;document.getElementById('reset').onclick=function(){focus=-1;search.value='';draw()};\n"
    "window.addEventListener('resize',draw);draw();\n"
    "})();\n";

static int write_page(struct html *h, const char *title)
{
  const struct prof *p = h->p;
  FILE *f = h->out;
  fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>rsprof: ", f);
  put_html(f, title);
  fprintf(f, "</title>\n<style>%s</style></head>\n<body>\n<h1>rsprof profile: ", STYLE);
  put_html(f, title);
  fputs("</h1>\n<h2>Summary</h2>\n<table id=\"totals\"><tr><th>metric</th><th>total</th><th>unit</th></tr>\n", f);
  for (size_t m = 0; m < p->nmetrics; m++) {
    fputs("<tr><td>", f);
    put_html(f, p->metric_name[m]);
    fprintf(f, "</td><td class=\"num\" data-metric=\"%zu\">%" PRId64 "</td><td>", m, total(p, m));
    put_html(f, p->metric_unit[m]);
    fputs("</td></tr>\n", f);
  }
  fprintf(f, "</table>\n<p>%zu calling contexts.</p>\n", p->nctx);

  fputs("<h2>Flame graph (icicle)</h2>\n<div id=\"controls\"><label>metric <select id=\"metric\"></select></label>"
        "<input id=\"search\" placeholder=\"search (regular expression)\" size=\"32\">"
        "<button id=\"reset\">reset zoom</button></div>\n<div id=\"tip\"></div>\n<div id=\"chart\"></div>\n", f);

  for (size_t m = 0; m < p->nmetrics; m++) {
    fputs("<h2>Top contexts: ", f);
    put_html(f, p->metric_name[m]);
    fputs("</h2>\n", f);
    int rc = put_top(h, m, TOP_CONTEXTS, "top");
    if (rc)
      return rc;
  }
  int leaked = prof_metric_index(p, "leaked_bytes");
  if (leaked >= 0) {
    fputs("<h2 id=\"leaks\">Leaks: blocks still allocated at the end</h2>\n", f);
    int rc = put_top(h, (size_t)leaked, TOP_LEAKS, "leaks");
    if (rc)
      return rc;
  }

  /* The data the graph draws: metrics, then nodes as [parent, name, "file:line", self values...]. */
  fputs("<script>\nvar RSPROF={\"metrics\":[", f);
  for (size_t m = 0; m < p->nmetrics; m++) {
    fputs(m ? ",{\"name\":" : "{\"name\":", f);
    put_js_string(f, p->metric_name[m]);
    fputs(",\"unit\":", f);
    put_js_string(f, p->metric_unit[m]);
    fprintf(f, ",\"total\":%" PRId64 "}", total(p, m));
  }
  fputs("],\"nodes\":[\n", f);
  for (size_t i = 0; i < h->nnodes; i++) {
    const struct prof_line *l = h->nodes[i].line;
    fprintf(f, "%s[%lld,", i ? ",\n" : "", h->nodes[i].parent == PROF_NONE ? -1LL : (long long)h->nodes[i].parent);
    put_js_string(f, line_name(l));
    fputc(',', f);
    char where[4096] = "";
    if (l->file)
      snprintf(where, sizeof where, l->line > 0 ? "%s:%" PRId64 : "%s", l->file, l->line);
    put_js_string(f, where);
    for (size_t m = 0; m < p->nmetrics; m++)
      fprintf(f, ",%" PRId64, h->self[i * p->nmetrics + m]);
    fputc(']', f);
  }
  fprintf(f, "]};\n</script>\n<script>\n%s</script>\n</body></html>\n", SCRIPT);
  return 0;
}

int html_write(FILE *out, const struct prof *p, const char *title)
{
  struct html h = {.p = p, .out = out};
  pstrmap_init(&h.keys);
  int rc = build_tree(&h);
  if (!rc)
    rc = write_page(&h, title ? title : "profile");
  if (!rc && (fflush(out) != 0 || ferror(out)))
    rc = -EIO;
  pstrmap_free(&h.keys);
  free(h.nodes);
  free(h.node_of_ctx);
  free(h.self);
  return rc;
}
