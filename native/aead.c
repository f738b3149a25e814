/*
 * bulwark native AES-256-GCM: in-place / into-caller-buffer sealing and opening through the OpenSSL that
 * Node.js itself links (libcrypto's EVP interface, the same AES-GCM implementation node:crypto calls).
 * This is not a cipher implementation: it removes what node:crypto adds around EVP per call, a fresh
 * output allocation per update (page faults for a 1 MiB frame) and a cipher object per message, which
 * measured at about a third of OpenSSL's own rate (bench/results/crypto.json). Nothing here is linked
 * against a separate libcrypto: the symbols resolve against the node binary that loads the addon.
 *
 * API (all byte arguments are Uint8Arrays; lengths are checked here and again in TypeScript):
 *   key(k32)                                        -> handle (the key lives in native memory, wiped on GC)
 *   seal(h, iv12, aad, input, output, tag16)        -> undefined, throws on an OpenSSL failure
 *   open(h, iv12, aad, input, output, tag16)        -> boolean (false: tag mismatch, output zeroed)
 *   openv(h, iv12, aad, pieces[], output, tag16)    -> the same with the input in several pieces
 *   sealAsync / openAsync(h, ..., cb(err, ok))      the same on the libuv thread pool
 *   wipe(h)                                         overwrites the key now; later calls throw
 * `output` may be `input` itself (in place) but must not otherwise overlap it.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BYTES 32
#define IV_BYTES 12
#define TAG_BYTES 16

typedef struct {
  unsigned char key[KEY_BYTES];
  EVP_CIPHER_CTX *enc; /* keyed once; used only on the JavaScript thread (sync calls) */
  EVP_CIPHER_CTX *dec;
  int wiped;           /* wipe() was called: every later use throws */
} gcm_key;

typedef struct {
  const unsigned char *p;
  size_t n;
} bytes;

static napi_value throw_code(napi_env env, const char *code, const char *msg) {
  napi_throw_error(env, code, msg);
  return NULL;
}

static int get_bytes(napi_env env, napi_value v, bytes *out) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  napi_typedarray_type t;
  size_t len;
  void *data;
  if (napi_get_typedarray_info(env, v, &t, &len, &data, NULL, NULL) != napi_ok) return 0;
  if (t != napi_uint8_array) return 0;
  out->p = (const unsigned char *)data;
  out->n = len;
  return 1;
}

/* Overwrites the key and frees the keyed contexts (OpenSSL clears their key schedules on free). */
static void key_clear(gcm_key *k) {
  OPENSSL_cleanse(k->key, KEY_BYTES);
  EVP_CIPHER_CTX_free(k->enc);
  EVP_CIPHER_CTX_free(k->dec);
  k->enc = NULL;
  k->dec = NULL;
  k->wiped = 1;
}

static void key_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  gcm_key *k = (gcm_key *)data;
  key_clear(k);
  free(k);
}

static napi_value make_key(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bytes k;
  if (argc < 1 || !get_bytes(env, argv[0], &k) || k.n != KEY_BYTES)
    return throw_code(env, "ERR_NATIVE_AEAD", "key must be a Uint8Array of 32 bytes");
  gcm_key *g = (gcm_key *)calloc(1, sizeof(gcm_key));
  if (!g) return throw_code(env, "ERR_NATIVE_AEAD", "out of memory");
  memcpy(g->key, k.p, KEY_BYTES);
  g->enc = EVP_CIPHER_CTX_new();
  g->dec = EVP_CIPHER_CTX_new();
  if (!g->enc || !g->dec || EVP_EncryptInit_ex(g->enc, EVP_aes_256_gcm(), NULL, g->key, NULL) != 1 ||
      EVP_DecryptInit_ex(g->dec, EVP_aes_256_gcm(), NULL, g->key, NULL) != 1) {
    key_finalize(env, g, NULL);
    return throw_code(env, "ERR_NATIVE_AEAD", "OpenSSL could not set up AES-256-GCM");
  }
  napi_value ext;
  if (napi_create_external(env, g, key_finalize, NULL, &ext) != napi_ok) {
    key_finalize(env, g, NULL);
    return throw_code(env, "ERR_NATIVE_AEAD", "could not create the key handle");
  }
  return ext;
}

/* One seal or open with a context already keyed (iv set here), over the input given as `nin` pieces
 * that fill `out` (`total` bytes) in order: one piece for seal and open, several for openv (a frame
 * that straddles read chunks, opened without gathering it first). Returns 1 on success; for open, 0 also
 * when the tag does not verify (the output is then wiped). */
static int run_gcm(EVP_CIPHER_CTX *c, int encrypt, const bytes *iv, const bytes *aad, const bytes *in,
                   size_t nin, unsigned char *out, size_t total, unsigned char *tag) {
  int len = 0;
  int ok = encrypt ? EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv->p) == 1
                   : EVP_DecryptInit_ex(c, NULL, NULL, NULL, iv->p) == 1 &&
                         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) == 1;
  if (ok && aad->n > 0)
    ok = (encrypt ? EVP_EncryptUpdate(c, NULL, &len, aad->p, (int)aad->n)
                  : EVP_DecryptUpdate(c, NULL, &len, aad->p, (int)aad->n)) == 1;
  size_t off = 0;
  for (size_t i = 0; ok && i < nin; i++) {
    if (in[i].n == 0) continue;
    ok = (encrypt ? EVP_EncryptUpdate(c, out + off, &len, in[i].p, (int)in[i].n)
                  : EVP_DecryptUpdate(c, out + off, &len, in[i].p, (int)in[i].n)) == 1;
    off += in[i].n;
  }
  if (encrypt)
    return ok && EVP_EncryptFinal_ex(c, out + off, &len) == 1 &&
           EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, tag) == 1;
  ok = ok && EVP_DecryptFinal_ex(c, out + off, &len) == 1;
  /* No unauthenticated plaintext leaves: a failed open wipes what was written. */
  if (!ok && total > 0) OPENSSL_cleanse(out, total);
  return ok;
}

typedef struct {
  gcm_key *key;
  unsigned char job_key[KEY_BYTES]; /* async jobs: a copy, so wipe() may run while a job is queued */
  bytes iv, aad, in;
  unsigned char *out, *tag;
  size_t out_n;
} gcm_args;

/* Reads what every operation takes, (handle, iv, aad, <input>, output, tag), except the input, and checks
 * each; the output's length is left to the caller. 0 with an exception pending. */
static int read_common(napi_env env, napi_value *argv, size_t argc, gcm_args *a) {
  if (argc < 6) return (throw_code(env, "ERR_NATIVE_AEAD", "expected 6 arguments"), 0);
  if (napi_get_value_external(env, argv[0], (void **)&a->key) != napi_ok || !a->key)
    return (throw_code(env, "ERR_NATIVE_AEAD", "the first argument must be a key handle"), 0);
  if (a->key->wiped) return (throw_code(env, "ERR_NATIVE_AEAD", "the key was wiped"), 0);
  bytes out, tag;
  if (!get_bytes(env, argv[1], &a->iv) || a->iv.n != IV_BYTES)
    return (throw_code(env, "ERR_NATIVE_AEAD", "iv must be 12 bytes"), 0);
  if (!get_bytes(env, argv[2], &a->aad) || a->aad.n > INT_MAX)
    return (throw_code(env, "ERR_NATIVE_AEAD", "aad must be a Uint8Array under 2 GiB"), 0);
  if (!get_bytes(env, argv[4], &out) || out.n > INT_MAX)
    return (throw_code(env, "ERR_NATIVE_AEAD", "output must be a Uint8Array under 2 GiB"), 0);
  if (!get_bytes(env, argv[5], &tag) || tag.n != TAG_BYTES)
    return (throw_code(env, "ERR_NATIVE_AEAD", "tag must be 16 bytes"), 0);
  a->out = (unsigned char *)out.p;
  a->out_n = out.n;
  a->tag = (unsigned char *)tag.p;
  return 1;
}

/* Whether `p` overlaps the output without being exactly it (in place is allowed, shifted is not). */
static int overlaps(const bytes *p, const gcm_args *a) {
  uintptr_t p0 = (uintptr_t)p->p, o0 = (uintptr_t)a->out;
  return p->p != a->out && p->n > 0 && p0 < o0 + a->out_n && o0 < p0 + p->n;
}

/* read_common plus the single input (argv[3]), as long as the output. */
static int read_args(napi_env env, napi_value *argv, size_t argc, gcm_args *a) {
  if (!read_common(env, argv, argc, a)) return 0;
  if (!get_bytes(env, argv[3], &a->in) || a->in.n != a->out_n)
    return (throw_code(env, "ERR_NATIVE_AEAD", "output must be a Uint8Array as long as input"), 0);
  if (overlaps(&a->in, a))
    return (throw_code(env, "ERR_NATIVE_AEAD", "output overlaps input without being the same bytes"), 0);
  return 1;
}

static napi_value sync_op(napi_env env, napi_callback_info info, int encrypt) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gcm_args a;
  if (!read_args(env, argv, argc, &a)) return NULL;
  int ok = run_gcm(encrypt ? a.key->enc : a.key->dec, encrypt, &a.iv, &a.aad, &a.in, 1, a.out, a.out_n,
                   a.tag);
  if (encrypt && !ok) return throw_code(env, "ERR_NATIVE_AEAD", "OpenSSL failed to encrypt");
  napi_value r;
  if (encrypt) napi_get_undefined(env, &r);
  else napi_get_boolean(env, ok, &r);
  return r;
}

/* openv(h, iv, aad, pieces[], output, tag) -> boolean: opens a ciphertext given as several pieces (a
 * frame that straddles read chunks) into one output, without gathering the pieces first. */
static napi_value openv(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gcm_args a;
  if (!read_common(env, argv, argc, &a)) return NULL;
  bool is_array = false;
  uint32_t count = 0;
  if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[3], &count) != napi_ok)
    return throw_code(env, "ERR_NATIVE_AEAD", "pieces must be an array of Uint8Arrays");
  bytes *pieces = (bytes *)calloc(count > 0 ? count : 1, sizeof(bytes));
  if (!pieces) return throw_code(env, "ERR_NATIVE_AEAD", "out of memory");
  /* Every piece is checked (and the lengths must add up to the output's) before anything is written. */
  const char *bad = NULL;
  size_t total = 0;
  for (uint32_t i = 0; !bad && i < count; i++) {
    napi_value v;
    if (napi_get_element(env, argv[3], i, &v) != napi_ok || !get_bytes(env, v, &pieces[i]))
      bad = "pieces must be an array of Uint8Arrays";
    else if (pieces[i].n > 0 && (overlaps(&pieces[i], &a) || pieces[i].p == a.out))
      bad = "a piece overlaps the output";
    else if ((total += pieces[i].n) > a.out_n)
      bad = "the pieces must add up to the output's length";
  }
  if (!bad && total != a.out_n) bad = "the pieces must add up to the output's length";
  int ok = bad ? 0 : run_gcm(a.key->dec, 0, &a.iv, &a.aad, pieces, count, a.out, a.out_n, a.tag);
  free(pieces);
  if (bad) return throw_code(env, "ERR_NATIVE_AEAD", bad);
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

static napi_value seal(napi_env env, napi_callback_info info) { return sync_op(env, info, 1); }
static napi_value open_(napi_env env, napi_callback_info info) { return sync_op(env, info, 0); }

/* Asynchronous: the work runs on a libuv pool thread with a context of its own; references keep the key
 * handle and every buffer alive until the callback. */
typedef struct {
  napi_async_work work;
  napi_ref refs[6];
  napi_ref cb;
  gcm_args a;
  int encrypt;
  int ok;
} job;

static void job_execute(napi_env env, void *data) {
  (void)env;
  job *j = (job *)data;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  j->ok = 0;
  if (!c) {
    OPENSSL_cleanse(j->a.job_key, KEY_BYTES);
    return;
  }
  int init = j->encrypt ? EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, j->a.job_key, NULL)
                        : EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, j->a.job_key, NULL);
  OPENSSL_cleanse(j->a.job_key, KEY_BYTES);
  if (init == 1)
    j->ok = run_gcm(c, j->encrypt, &j->a.iv, &j->a.aad, &j->a.in, 1, j->a.out, j->a.out_n, j->a.tag);
  else if (!j->encrypt && j->a.out_n > 0) OPENSSL_cleanse(j->a.out, j->a.out_n);
  EVP_CIPHER_CTX_free(c);
}

static void job_complete(napi_env env, napi_status status, void *data) {
  job *j = (job *)data;
  napi_value cb, global, argv[2];
  napi_get_reference_value(env, j->cb, &cb);
  napi_get_global(env, &global);
  if (status != napi_ok || (j->encrypt && !j->ok)) {
    napi_value msg;
    napi_create_string_utf8(env, status != napi_ok ? "the AES-GCM job was cancelled" : "OpenSSL failed to encrypt",
                            NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &argv[0]);
    napi_get_undefined(env, &argv[1]);
  } else {
    napi_get_null(env, &argv[0]);
    napi_get_boolean(env, j->ok, &argv[1]);
  }
  for (int i = 0; i < 6; i++) napi_delete_reference(env, j->refs[i]);
  napi_delete_reference(env, j->cb);
  napi_delete_async_work(env, j->work);
  OPENSSL_cleanse(j->a.job_key, KEY_BYTES);
  free(j);
  napi_call_function(env, global, cb, 2, argv, NULL);
}

static napi_value async_op(napi_env env, napi_callback_info info, int encrypt) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t = napi_undefined;
  if (argc < 7 || napi_typeof(env, argv[6], &t) != napi_ok || t != napi_function)
    return throw_code(env, "ERR_NATIVE_AEAD", "the last argument must be a callback");
  job *j = (job *)calloc(1, sizeof(job));
  if (!j) return throw_code(env, "ERR_NATIVE_AEAD", "out of memory");
  if (!read_args(env, argv, 6, &j->a)) {
    free(j);
    return NULL;
  }
  memcpy(j->a.job_key, j->a.key->key, KEY_BYTES);
  j->encrypt = encrypt;
  for (int i = 0; i < 6; i++) napi_create_reference(env, argv[i], 1, &j->refs[i]);
  napi_create_reference(env, argv[6], 1, &j->cb);
  napi_value name;
  napi_create_string_utf8(env, encrypt ? "bulwark.gcm.seal" : "bulwark.gcm.open", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, job_execute, job_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    for (int i = 0; i < 6; i++) napi_delete_reference(env, j->refs[i]);
    napi_delete_reference(env, j->cb);
    OPENSSL_cleanse(j->a.job_key, KEY_BYTES);
    free(j);
    return throw_code(env, "ERR_NATIVE_AEAD", "could not queue the AES-GCM job");
  }
  return NULL;
}

static napi_value seal_async(napi_env env, napi_callback_info info) { return async_op(env, info, 1); }
static napi_value open_async(napi_env env, napi_callback_info info) { return async_op(env, info, 0); }

static napi_value wipe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  gcm_key *k = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&k) != napi_ok || !k)
    return throw_code(env, "ERR_NATIVE_AEAD", "the argument must be a key handle");
  key_clear(k);
  return NULL;
}

static napi_value version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value s;
  napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &s);
  return s;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"key", NULL, make_key, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seal", NULL, seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, open_, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openv", NULL, openv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sealAsync", NULL, seal_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openAsync", NULL, open_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"wipe", NULL, wipe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"opensslVersion", NULL, version, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
