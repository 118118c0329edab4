/* TLS 1.2 for the agent's connections through mbedtls, driven by memory BIO callbacks: libuv reads
 * ciphertext into the session, mbedtls returns WANT_READ when it needs more. Only forward-secret AEAD
 * suites are offered (and ECDHE-PSK for pre-shared keys), and a refused handshake is logged with the
 * PSK identity or certificate the peer presented. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>

#include "buf.h"
#include "errors.h"
#include "hex.h"
#include "log.h"
#include "transport.h"

struct agent_tls_server {
  mbedtls_ssl_config conf;
  mbedtls_x509_crt cert, ca;
  mbedtls_pk_context key;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  unsigned char psk[64];
  size_t psk_len;
  char psk_identity[128];
  size_t psk_identity_len;
  int suites[16]; /* what the handshake may choose, 0-terminated (mbedtls keeps the pointer) */
};

struct agent_tls_conn {
  mbedtls_ssl_context ssl;
  struct rs_buf in; /* ciphertext received and not yet consumed by mbedtls */
  size_t in_off;
  agent_bytes_fn wire, plain;
  agent_room_fn room;
  void *ctx;
  int established;
  /* What the peer presented, for the log line when the handshake is refused (printable, cut). */
  char peer_psk[80];      /* the PSK identity it sent, or "" */
  int peer_psk_known;     /* that identity is ours (so a failure means a wrong key) */
  char peer_cert[160];    /* its certificate's subject, or "" */
  uint32_t peer_cert_flags; /* mbedtls verification flags of that certificate */
};

/* The suites, best first: ECDHE key exchange (forward secrecy) with an AEAD cipher. mbedtls has no
 * AEAD ECDHE-PSK suite besides ChaCha20-Poly1305, so the PSK list adds the CBC ones with SHA-256/384
 * MACs; CBC with SHA-1 and PSK without ECDHE are never offered. */
static const int cert_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
};
static const int psk_suites[] = {
    MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256, MBEDTLS_TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384,
    MBEDTLS_TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
};

/* Copies n peer-supplied bytes into out as printable text (others as \xNN), cut to fit. */
static void printable(char *out, size_t cap, const unsigned char *in, size_t n)
{
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 < cap; i++)
    o += (size_t)snprintf(out + o, cap - o, in[i] >= 0x20 && in[i] < 0x7f && in[i] != '\\' ? "%c" : "\\x%02x",
                          in[i]);
  out[o] = 0;
}

static struct agent_tls_conn *conn_of(mbedtls_ssl_context *ssl)
{
  return (struct agent_tls_conn *)((char *)ssl - offsetof(struct agent_tls_conn, ssl));
}

/* The server's PSK callback: accepts only the configured identity, and notes what was offered. */
static int psk_lookup(void *ctx, mbedtls_ssl_context *ssl, const unsigned char *id, size_t len)
{
  struct agent_tls_server *t = ctx;
  struct agent_tls_conn *c = conn_of(ssl);
  printable(c->peer_psk, sizeof c->peer_psk, id, len);
  c->peer_psk_known = len == t->psk_identity_len && memcmp(id, t->psk_identity, len) == 0;
  if (!c->peer_psk_known)
    return -1;
  return mbedtls_ssl_set_hs_psk(ssl, t->psk, t->psk_len);
}

/* Certificate verification, per certificate of the peer's chain: notes the peer's own (depth 0). */
static int note_cert(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
  struct agent_tls_conn *c = ctx;
  if (depth == 0) {
    char dn[256];
    int n = mbedtls_x509_dn_gets(dn, sizeof dn, &crt->subject);
    printable(c->peer_cert, sizeof c->peer_cert, (const unsigned char *)dn, n > 0 ? (size_t)n : 0);
  }
  c->peer_cert_flags |= *flags;
  return 0;
}

/* Logs a refused handshake, naming what the peer presented. */
static void log_refusal(struct agent_tls_conn *c, int rc)
{
  char msg[160];
  mbedtls_strerror(rc, msg, sizeof msg);
  if (c->peer_psk[0] && !c->peer_psk_known) {
    LOG_WARN("TLS handshake refused: unknown PSK identity '%s'", c->peer_psk);
  } else if (c->peer_psk[0]) {
    LOG_WARN("TLS handshake refused for PSK identity '%s' (wrong key?): %s", c->peer_psk, msg);
  } else if (c->peer_cert[0]) {
    char why[256] = "";
    if (c->peer_cert_flags)
      mbedtls_x509_crt_verify_info(why, sizeof why, "", c->peer_cert_flags);
    for (char *nl; (nl = strchr(why, '\n')) != NULL;)
      *nl = nl[1] ? ';' : 0;
    LOG_WARN("TLS handshake refused for client certificate '%s': %s", c->peer_cert, why[0] ? why : msg);
  } else if (rc == MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE) {
    LOG_WARN("TLS handshake refused: no client certificate presented");
  } else {
    LOG_WARN("TLS handshake refused: %s", msg);
  }
}

int agent_tls_wanted(const struct agent_tls_opts *o)
{
  return o->cert || o->key || o->ca || o->psk_file || o->psk_identity;
}

static void log_tls(const char *what, int rc)
{
  char msg[160];
  mbedtls_strerror(rc, msg, sizeof msg);
  LOG_WARN("%s: %s", what, msg);
}

/* Reads a hex pre-shared key (whitespace around it ignored). Returns 0 or a negative code. */
static int load_psk(const char *path, unsigned char *out, size_t cap, size_t *len)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return -errno;
  char hexbuf[260];
  size_t n = fread(hexbuf, 1, sizeof hexbuf - 1, f);
  fclose(f);
  while (n > 0 && (hexbuf[n - 1] == '\n' || hexbuf[n - 1] == '\r' || hexbuf[n - 1] == ' '))
    n--;
  if (n == 0 || n % 2 || n / 2 > cap || hex_decode(out, hexbuf, n / 2))
    return RS_E_BAD_ARG;
  *len = n / 2;
  return 0;
}

int agent_tls_server_new(const struct agent_tls_opts *o, struct agent_tls_server **out)
{
  struct agent_tls_server *t = calloc(1, sizeof *t);
  if (!t)
    return -ENOMEM;
  mbedtls_ssl_config_init(&t->conf);
  mbedtls_x509_crt_init(&t->cert);
  mbedtls_x509_crt_init(&t->ca);
  mbedtls_pk_init(&t->key);
  mbedtls_entropy_init(&t->entropy);
  mbedtls_ctr_drbg_init(&t->drbg);
  int rc = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                                 (const unsigned char *)"rsprof-agent", 12);
  if (!rc)
    rc = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc) {
    log_tls("TLS set-up failed", rc);
    goto fail;
  }
  mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
  mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  if (o->cert) {
    if ((rc = mbedtls_x509_crt_parse_file(&t->cert, o->cert)) != 0) {
      log_tls(o->cert, rc);
      goto fail;
    }
    if ((rc = mbedtls_pk_parse_keyfile(&t->key, o->key, NULL)) != 0) {
      log_tls(o->key, rc);
      goto fail;
    }
    if ((rc = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key)) != 0) {
      log_tls("server certificate", rc);
      goto fail;
    }
  }
  if (o->ca) {
    if ((rc = mbedtls_x509_crt_parse_file(&t->ca, o->ca)) != 0) {
      log_tls(o->ca, rc);
      goto fail;
    }
    mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
    mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
  } else {
    mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_NONE);
  }
  if (o->psk_file) {
    rc = load_psk(o->psk_file, t->psk, sizeof t->psk, &t->psk_len);
    if (rc) {
      LOG_ERR("cannot read the pre-shared key from %s (hex expected)", o->psk_file);
      goto fail;
    }
    t->psk_identity_len = strlen(o->psk_identity);
    if (t->psk_identity_len == 0 || t->psk_identity_len > sizeof t->psk_identity) {
      LOG_ERR("the PSK identity must be 1 to %zu bytes", sizeof t->psk_identity);
      rc = RS_E_BAD_ARG;
      goto fail;
    }
    memcpy(t->psk_identity, o->psk_identity, t->psk_identity_len);
    /* The callback accepts only our identity, and lets a refusal say which one was offered. */
    mbedtls_ssl_conf_psk_cb(&t->conf, psk_lookup, t);
  }
  size_t ns = 0;
  if (o->cert)
    for (size_t i = 0; i < sizeof cert_suites / sizeof cert_suites[0]; i++)
      t->suites[ns++] = cert_suites[i];
  if (o->psk_file)
    for (size_t i = 0; i < sizeof psk_suites / sizeof psk_suites[0]; i++)
      t->suites[ns++] = psk_suites[i];
  t->suites[ns] = 0;
  mbedtls_ssl_conf_ciphersuites(&t->conf, t->suites);
  if (!o->cert && !o->psk_file) {
    LOG_ERR("TLS needs --tls-cert/--tls-key or --tls-psk-file/--tls-psk-identity");
    rc = RS_E_BAD_ARG;
    goto fail;
  }
  *out = t;
  return 0;
fail:
  agent_tls_server_destroy(t);
  return RS_E_TLS;
}

void agent_tls_server_destroy(struct agent_tls_server *t)
{
  if (!t)
    return;
  mbedtls_ssl_config_free(&t->conf);
  mbedtls_x509_crt_free(&t->cert);
  mbedtls_x509_crt_free(&t->ca);
  mbedtls_pk_free(&t->key);
  mbedtls_ctr_drbg_free(&t->drbg);
  mbedtls_entropy_free(&t->entropy);
  mbedtls_platform_zeroize(t->psk, sizeof t->psk);
  free(t);
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
  struct agent_tls_conn *c = ctx;
  c->wire(c->ctx, buf, len);
  return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
  struct agent_tls_conn *c = ctx;
  size_t avail = c->in.len - c->in_off;
  if (avail == 0)
    return MBEDTLS_ERR_SSL_WANT_READ;
  size_t n = avail < len ? avail : len;
  memcpy(buf, c->in.data + c->in_off, n);
  c->in_off += n;
  return (int)n;
}

struct agent_tls_conn *agent_tls_conn_new(struct agent_tls_server *t, agent_bytes_fn wire,
                                          agent_bytes_fn plain, agent_room_fn room, void *ctx)
{
  struct agent_tls_conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  mbedtls_ssl_init(&c->ssl);
  if (mbedtls_ssl_setup(&c->ssl, &t->conf)) {
    mbedtls_ssl_free(&c->ssl);
    free(c);
    return NULL;
  }
  mbedtls_ssl_set_verify(&c->ssl, note_cert, c);
  rs_buf_init(&c->in, 1u << 20);
  c->wire = wire;
  c->plain = plain;
  c->room = room;
  c->ctx = ctx;
  mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
  return c;
}

void agent_tls_conn_destroy(struct agent_tls_conn *c)
{
  if (!c)
    return;
  mbedtls_ssl_free(&c->ssl);
  rs_buf_free(&c->in);
  free(c);
}

int agent_tls_conn_feed(struct agent_tls_conn *c, const void *data, size_t len)
{
  if (c->in_off > 0) {
    rs_buf_consume(&c->in, c->in_off);
    c->in_off = 0;
  }
  if (rs_buf_append(&c->in, data, len))
    return RS_E_LIMIT;
  if (!c->established) {
    int rc = mbedtls_ssl_handshake(&c->ssl);
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
      return 0;
    if (rc) {
      log_refusal(c, rc);
      return RS_E_TLS;
    }
    c->established = 1;
    LOG_INFO("TLS session established (%s)", mbedtls_ssl_get_ciphersuite(&c->ssl));
  }
  unsigned char buf[16384];
  for (;;) {
    /* A smaller read leaves the rest of the record decrypted inside mbedtls for the next call. */
    size_t room = c->room(c->ctx);
    if (room == 0)
      return 0;
    int n = mbedtls_ssl_read(&c->ssl, buf, room < sizeof buf ? room : sizeof buf);
    if (n > 0) {
      c->plain(c->ctx, buf, (size_t)n);
      continue;
    }
    if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
      return 0;
    if (n == 0 || n == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
      return RS_E_DISCONNECTED;
    log_tls("TLS read failed", n);
    return RS_E_TLS;
  }
}

int agent_tls_conn_established(const struct agent_tls_conn *c) { return c->established; }

size_t agent_tls_conn_pending(const struct agent_tls_conn *c)
{
  size_t n = c->in.len - c->in_off + mbedtls_ssl_get_bytes_avail(&c->ssl);
  /* A record already read from us but not yet decrypted counts too (at least one byte of it). */
  return n ? n : (size_t)mbedtls_ssl_check_pending(&c->ssl);
}

int agent_tls_conn_write(struct agent_tls_conn *c, const void *data, size_t len)
{
  if (!c->established)
    return RS_E_TLS;
  const unsigned char *p = data;
  while (len > 0) {
    int n = mbedtls_ssl_write(&c->ssl, p, len);
    if (n < 0) {
      log_tls("TLS write failed", n);
      return RS_E_TLS;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}
