/*
 * tls_shim_crypto: a shared library whose SONAME is "libcrypto.so" and whose only content is its
 * dependency on the real libcrypto.so.3 — what CivetWeb's dlopen("libcrypto.so") needs on a
 * machine without the libssl-dev package (see tls_shim_ssl.c). Every lookup falls through to
 * libcrypto.so.3, which OpenSSL 3 exports in full for CivetWeb.
 */

/* A translation unit must declare something; nothing uses this. */
__attribute__((visibility("default"))) const char dynserve_tls_shim_crypto[] = "libcrypto.so";
