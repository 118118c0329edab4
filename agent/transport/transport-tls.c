/* TLS 1.2 for the agent's connections through mbedtls, driven by memory BIO callbacks: libuv reads
 * ciphertext into the session, mbedtls returns WANT_READ when it needs more. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
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
};

struct agent_tls_conn {
  mbedtls_ssl_context ssl;
  struct rs_buf in; /* ciphertext received and not yet consumed by mbedtls */
  size_t in_off;
  agent_bytes_fn wire, plain;
  agent_room_fn room;
  void *ctx;
  int established;
};

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
    /* A server with one configured PSK rejects any other identity during the handshake. */
    rc = mbedtls_ssl_conf_psk(&t->conf, t->psk, t->psk_len, (const unsigned char *)o->psk_identity,
                              strlen(o->psk_identity));
    if (rc) {
      log_tls("pre-shared key", rc);
      goto fail;
    }
  }
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
      log_tls("TLS handshake refused", rc);
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
