/* The transport's TLS 1.2 client on mbedtls: server verification against a CA, an optional client
 * certificate, or a pre-shared key (ECDHE-PSK only, for forward secrecy); no CBC suite with SHA-1 MACs;
 * ciphertext moves through the callbacks the TCP side provides. */
#include "transport-tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>

#include "errors.h"
#include "hex.h"
#include "log.h"

#define PSK_MAX 64
#define MAX_SUITES 256
#define PEER_NAMES_MAX 512

struct transport_tls {
  mbedtls_ssl_context ssl;
  mbedtls_ssl_config conf;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_x509_crt ca, cert;
  mbedtls_pk_context key;
  transport_tls_send_fn send;
  transport_tls_recv_fn recv;
  void *ctx;
  int io_error; /* an error from the callbacks, preferred over mbedtls' generic code */
  int suites[MAX_SUITES + 1]; /* the ciphersuites offered, 0-terminated (the config keeps a pointer) */
  int psk;                    /* authenticating with a pre-shared key */
  const char *psk_file, *psk_identity; /* borrowed from the options, for messages */
  char host[256];             /* the name the certificate must hold */
  char peer_names[PEER_NAMES_MAX]; /* the names the agent's certificate holds, seen while verifying it */
};

static void log_mbedtls(const char *what, const char *path, int rc)
{
  char msg[160];
  mbedtls_strerror(rc, msg, sizeof msg);
  LOG_ERR("tls: %s%s%s: %s (-0x%04x)", what, path ? " " : "", path ? path : "", msg, (unsigned)-rc);
}

static int bio_send(void *p, const unsigned char *buf, size_t len)
{
  struct transport_tls *s = p;
  int rc = s->send(s->ctx, buf, len);
  if (rc < 0) {
    s->io_error = rc;
    return MBEDTLS_ERR_NET_SEND_FAILED;
  }
  return (int)len;
}

static int bio_recv(void *p, unsigned char *buf, size_t len)
{
  struct transport_tls *s = p;
  long n = s->recv(s->ctx, buf, len);
  if (n == 0)
    return MBEDTLS_ERR_SSL_WANT_READ;
  if (n < 0) {
    if (n == RS_E_DISCONNECTED)
      return 0; /* end of stream: mbedtls reports it as a closed connection */
    s->io_error = (int)n;
    return MBEDTLS_ERR_NET_RECV_FAILED;
  }
  return (int)n;
}

/* Offers the suites mbedtls enables by default minus the weak ones: never a CBC suite with a SHA-1 (or MD5)
 * MAC; with a pre-shared key only ECDHE-PSK, since plain PSK has no forward secrecy (whoever learns the key
 * later can read every recorded session). */
static int choose_suites(struct transport_tls *s)
{
  size_t n = 0;
  for (const int *id = mbedtls_ssl_list_ciphersuites(); *id && n < MAX_SUITES; id++) {
    const mbedtls_ssl_ciphersuite_t *cs = mbedtls_ssl_ciphersuite_from_id(*id);
    if (!cs || cs->mac == MBEDTLS_MD_SHA1 || cs->mac == MBEDTLS_MD_MD5 || (cs->flags & MBEDTLS_CIPHERSUITE_WEAK))
      continue;
    if (s->psk ? cs->key_exchange != MBEDTLS_KEY_EXCHANGE_ECDHE_PSK : mbedtls_ssl_ciphersuite_uses_psk(cs))
      continue;
    s->suites[n++] = *id;
  }
  s->suites[n] = 0;
  if (n == 0) {
    LOG_ERR("tls: this mbedtls offers no %s suite", s->psk ? "ECDHE-PSK" : "usable certificate");
    return RS_E_TLS;
  }
  mbedtls_ssl_conf_ciphersuites(&s->conf, s->suites);
  return 0;
}

/* Appends len bytes of arg, formatted with fmt (one "%.*s"), to a fixed NUL-terminated buffer, truncating. */
static void append(char *buf, size_t max, const char *fmt, const char *arg, size_t len)
{
  size_t used = strlen(buf);
  if (used + 1 < max)
    snprintf(buf + used, max - used, fmt, (int)len, arg);
}

/* Notes the names the agent's own certificate (depth 0) holds: its subject and its DNS subjectAltNames, so
 * a name mismatch can say what was presented. The verification result itself is left to mbedtls. */
static int on_verify(void *p, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
  struct transport_tls *s = p;
  (void)flags;
  if (depth != 0)
    return 0;
  char dn[256];
  s->peer_names[0] = 0;
  if (mbedtls_x509_dn_gets(dn, sizeof dn, &crt->subject) > 0)
    append(s->peer_names, sizeof s->peer_names, "subject \"%.*s\"", dn, strlen(dn));
  const char *sep = ", DNS names: ";
  for (const mbedtls_x509_sequence *san = &crt->subject_alt_names; san && san->buf.p; san = san->next) {
    if ((san->buf.tag & MBEDTLS_ASN1_TAG_VALUE_MASK) != MBEDTLS_X509_SAN_DNS_NAME)
      continue;
    append(s->peer_names, sizeof s->peer_names, "%.*s", sep, strlen(sep));
    append(s->peer_names, sizeof s->peer_names, "%.*s", (const char *)san->buf.p, san->buf.len);
    sep = ", ";
  }
  return 0;
}

int transport_tls_wanted(const struct transport_options *o)
{
  return o->tls_ca || o->tls_cert || o->tls_key || o->tls_psk_file || o->tls_psk_identity;
}

/* Reads a PSK file: hex digits (whitespace ignored) or, when it is not hex, the raw bytes. */
static int load_psk(const char *path, unsigned char *key, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    LOG_ERR("tls: cannot open PSK file %s: %s", path, strerror(e));
    return -e;
  }
  unsigned char raw[2 * PSK_MAX + 64];
  size_t n = fread(raw, 1, sizeof raw, f);
  int toolong = !feof(f);
  fclose(f);
  if (toolong) {
    LOG_ERR("tls: PSK file %s is too long (at most %d bytes of key)", path, PSK_MAX);
    return RS_E_TLS;
  }
  char digits[sizeof raw + 1];
  size_t nd = 0;
  int is_hex = 1;
  for (size_t i = 0; i < n; i++) {
    if (raw[i] == ' ' || raw[i] == '\n' || raw[i] == '\r' || raw[i] == '\t')
      continue;
    if (hex_digit(raw[i]) < 0) {
      is_hex = 0;
      break;
    }
    digits[nd++] = (char)raw[i];
  }
  if (is_hex && nd > 0 && nd % 2 == 0 && nd / 2 <= PSK_MAX) {
    hex_decode(key, digits, nd / 2);
    *len = nd / 2;
  } else if (!is_hex && n > 0 && n <= PSK_MAX) {
    memcpy(key, raw, n);
    *len = n;
  } else {
    LOG_ERR("tls: PSK file %s holds no usable key (hex digits, or 1..%d raw bytes)", path, PSK_MAX);
    return RS_E_TLS;
  }
  return 0;
}

int transport_tls_new(const struct transport_options *o, transport_tls_send_fn send, transport_tls_recv_fn recv,
                      void *ctx, struct transport_tls **out)
{
  *out = NULL;
  if ((o->tls_cert != NULL) != (o->tls_key != NULL)) {
    LOG_ERR("tls: a client certificate needs both --tls-cert and --tls-key");
    return RS_E_BAD_ARG;
  }
  if ((o->tls_psk_file != NULL) != (o->tls_psk_identity != NULL)) {
    LOG_ERR("tls: a pre-shared key needs both --tls-psk-file and --tls-psk-identity");
    return RS_E_BAD_ARG;
  }
  if (!o->tls_ca && !o->tls_psk_file) {
    /* Without a CA there is nothing to check the server against: refuse rather than encrypt to anyone. */
    LOG_ERR("tls: give --tls-ca to verify the agent's certificate, or --tls-psk-file/--tls-psk-identity");
    return RS_E_BAD_ARG;
  }
  struct transport_tls *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->send = send;
  s->recv = recv;
  s->ctx = ctx;
  mbedtls_ssl_init(&s->ssl);
  mbedtls_ssl_config_init(&s->conf);
  mbedtls_entropy_init(&s->entropy);
  mbedtls_ctr_drbg_init(&s->drbg);
  mbedtls_x509_crt_init(&s->ca);
  mbedtls_x509_crt_init(&s->cert);
  mbedtls_pk_init(&s->key);

  static const char pers[] = "rsprof-collector";
  int rc = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy, (const unsigned char *)pers,
                                 sizeof pers - 1);
  if (rc) {
    log_mbedtls("seeding the random generator", NULL, rc);
    goto fail;
  }
  rc = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                   MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc) {
    log_mbedtls("configuration", NULL, rc);
    goto fail;
  }
  mbedtls_ssl_conf_min_version(&s->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
  s->psk = o->tls_psk_file != NULL;
  s->psk_file = o->tls_psk_file;
  s->psk_identity = o->tls_psk_identity;
  snprintf(s->host, sizeof s->host, "%s", o->host ? o->host : "");
  rc = choose_suites(s);
  if (rc)
    goto fail_code;

  if (o->tls_ca) {
    rc = mbedtls_x509_crt_parse_file(&s->ca, o->tls_ca);
    if (rc) {
      log_mbedtls("cannot load CA file", o->tls_ca, rc);
      goto fail;
    }
    mbedtls_ssl_conf_ca_chain(&s->conf, &s->ca, NULL);
    mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_verify(&s->conf, on_verify, s);
  } else {
    mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_NONE); /* PSK alone authenticates the server */
  }
  if (o->tls_cert) {
    rc = mbedtls_x509_crt_parse_file(&s->cert, o->tls_cert);
    if (rc) {
      log_mbedtls("cannot load certificate", o->tls_cert, rc);
      goto fail;
    }
    rc = mbedtls_pk_parse_keyfile(&s->key, o->tls_key, NULL);
    if (rc) {
      log_mbedtls("cannot load private key", o->tls_key, rc);
      goto fail;
    }
    rc = mbedtls_ssl_conf_own_cert(&s->conf, &s->cert, &s->key);
    if (rc) {
      log_mbedtls("certificate and key do not match", o->tls_cert, rc);
      goto fail;
    }
  }
  if (o->tls_psk_file) {
    unsigned char psk[PSK_MAX];
    size_t psk_len = 0;
    rc = load_psk(o->tls_psk_file, psk, &psk_len);
    if (rc)
      goto fail_code;
    rc = mbedtls_ssl_conf_psk(&s->conf, psk, psk_len, (const unsigned char *)o->tls_psk_identity,
                              strlen(o->tls_psk_identity));
    memset(psk, 0, sizeof psk);
    if (rc) {
      log_mbedtls("cannot use the pre-shared key", o->tls_psk_file, rc);
      goto fail;
    }
  }
  rc = mbedtls_ssl_setup(&s->ssl, &s->conf);
  if (rc) {
    log_mbedtls("session setup", NULL, rc);
    goto fail;
  }
  if (o->tls_ca) {
    /* The certificate must name the host we dialled (CN or a DNS subjectAltName). */
    rc = mbedtls_ssl_set_hostname(&s->ssl, o->host);
    if (rc) {
      log_mbedtls("server name", o->host, rc);
      goto fail;
    }
  }
  mbedtls_ssl_set_bio(&s->ssl, s, bio_send, bio_recv, NULL);
  *out = s;
  return 0;
fail:
  rc = RS_E_TLS;
fail_code:
  transport_tls_free(s);
  return rc;
}

/* A PSK handshake the agent ended: with a wrong key its check of our Finished message fails (bad_record_mac,
 * decrypt_error), with an identity it does not know it says so (unknown_psk_identity); a suite mismatch
 * shows as handshake_failure. */
static void handshake_psk_failure(struct transport_tls *s, int rc)
{
  int alert = rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && s->ssl.in_msg ? s->ssl.in_msg[1] : -1;
  if (alert == MBEDTLS_SSL_ALERT_MSG_UNKNOWN_PSK_IDENTITY)
    LOG_ERR("tls: the agent does not know the PSK identity \"%s\"", s->psk_identity);
  else if (alert == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE)
    LOG_ERR("tls: the agent refused the handshake: it offers no ECDHE-PSK suite (plain PSK, without forward "
            "secrecy, is not used)");
  else
    LOG_ERR("tls: wrong pre-shared key: the agent's key for identity \"%s\" differs from the one in %s "
            "(the handshake's Finished check failed: %s)",
            s->psk_identity, s->psk_file,
            alert >= 0 ? "the agent sent a fatal alert" : "the agent's Finished message did not verify");
}

int transport_tls_handshake(struct transport_tls *s)
{
  int rc = mbedtls_ssl_handshake(&s->ssl);
  if (rc == 0) {
    LOG_INFO("tls: %s with %s", mbedtls_ssl_get_version(&s->ssl), mbedtls_ssl_get_ciphersuite(&s->ssl));
    return 0;
  }
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
    return 1;
  if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
    uint32_t flags = mbedtls_ssl_get_verify_result(&s->ssl);
    char why[512];
    mbedtls_x509_crt_verify_info(why, sizeof why, "  ", flags);
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
      LOG_ERR("tls: the agent's certificate is not for \"%s\", the name connected to: it presents %s "
              "(connect with one of its names, or give the agent a certificate for \"%s\")",
              s->host, s->peer_names[0] ? s->peer_names : "no names", s->host);
    LOG_ERR("tls: the agent's certificate was rejected:\n%s", why);
  } else if (s->psk && (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE || rc == MBEDTLS_ERR_SSL_INVALID_MAC ||
                        rc == MBEDTLS_ERR_SSL_BAD_HS_FINISHED)) {
    handshake_psk_failure(s, rc);
  } else if (s->psk && (rc == MBEDTLS_ERR_NET_SEND_FAILED || rc == MBEDTLS_ERR_NET_RECV_FAILED ||
                        rc == MBEDTLS_ERR_SSL_CONN_EOF)) {
    LOG_ERR("tls: the agent closed the connection during the handshake: it refused the PSK identity \"%s\" "
            "or the key in %s", s->psk_identity, s->psk_file);
  } else if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && s->ssl.in_msg &&
             s->ssl.in_msg[1] == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE) {
    LOG_ERR("tls: the agent refused the handshake (no cipher suite in common: this collector offers no CBC "
            "suite with SHA-1%s)", s->psk ? " and, with a pre-shared key, only ECDHE-PSK" : "");
  } else {
    log_mbedtls("handshake failed", NULL, rc);
  }
  return RS_E_TLS;
}

long transport_tls_read(struct transport_tls *s, uint8_t *buf, size_t max)
{
  int rc = mbedtls_ssl_read(&s->ssl, buf, max);
  if (rc > 0)
    return rc;
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
    return 0;
  if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
    return RS_E_DISCONNECTED;
  if (s->io_error)
    return s->io_error;
  log_mbedtls("read", NULL, rc);
  return RS_E_TLS;
}

int transport_tls_write(struct transport_tls *s, const uint8_t *data, size_t len)
{
  size_t done = 0;
  unsigned stalls = 0;
  while (done < len) {
    /* The send callback always takes everything (the TCP side queues), so WANT_WRITE cannot persist. */
    int rc = mbedtls_ssl_write(&s->ssl, data + done, len - done);
    if (rc > 0) {
      done += (size_t)rc;
      continue;
    }
    if ((rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) && ++stalls < 1000)
      continue;
    if (s->io_error)
      return s->io_error;
    log_mbedtls("write", NULL, rc);
    return RS_E_TLS;
  }
  return 0;
}

int transport_tls_pending(const struct transport_tls *s) { return mbedtls_ssl_get_bytes_avail(&s->ssl) > 0; }

void transport_tls_free(struct transport_tls *s)
{
  if (!s)
    return;
  mbedtls_ssl_free(&s->ssl);
  mbedtls_ssl_config_free(&s->conf);
  mbedtls_ctr_drbg_free(&s->drbg);
  mbedtls_entropy_free(&s->entropy);
  mbedtls_x509_crt_free(&s->ca);
  mbedtls_x509_crt_free(&s->cert);
  mbedtls_pk_free(&s->key);
  free(s);
}
