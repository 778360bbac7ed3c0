/*
 * tls_shim_ssl: a shared library whose SONAME is "libssl.so", so that CivetWeb's TLS works with
 * OpenSSL 3 on Debian 12.
 *
 * Debian's CivetWeb 1.15 loads OpenSSL at run time (dlopen("libssl.so"), then dlsym for each
 * function it uses) and was built for the OpenSSL 1.1 API: it looks up SSL_get_peer_certificate,
 * which OpenSSL 3 no longer exports (it became a macro for SSL_get1_peer_certificate), so TLS
 * fails with "load_tls_dll: libssl.so: cannot find SSL_get_peer_certificate". Before CivetWeb
 * starts TLS, http.c loads this library by its full path; glibc then answers CivetWeb's
 * dlopen("libssl.so") with it (an already loaded object whose SONAME matches), and dlsym on it
 * finds the one function below here and every other one in its dependency, the real
 * libssl.so.3. It also spares the runtime image the libssl-dev package that owns the libssl.so
 * link. tls_shim_crypto.c does the same for "libcrypto.so".
 */
#include <openssl/ssl.h>

#undef SSL_get_peer_certificate

/* Same contract as OpenSSL 1.1's: the caller owns the returned reference (X509_free). */
__attribute__((visibility("default"))) X509 *SSL_get_peer_certificate(const SSL *s);

X509 *SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}
