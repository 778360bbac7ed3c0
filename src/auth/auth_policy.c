/*
 * auth_policy: the one table that says what every route needs, and the browser rules.
 *
 * The table is read top to bottom and the first row whose method and path pattern match wins.
 * Patterns are matched segment by segment (repeated slashes collapse, as the handlers split
 * paths): "*" is one segment, a final "**" is any number of segments, including none. A method
 * "GET" also matches HEAD; "*" matches every method. Paths that no other row names fall to the
 * last two rows: GET is the dashboard's static files (open), anything else needs admin, so a
 * route added without a row here is closed rather than open.
 *
 * Adding a route: add its row here (and to test/integration/test_auth.py's route list, which
 * walks every row with every role).
 */
#include "auth_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

typedef struct auth_route_rule {
    const char *method;  /* "GET" (and HEAD), "POST", "PUT", "DELETE" or "*" */
    const char *pattern; /* segments; "*" one segment, trailing "**" the rest */
    auth_need need;
} auth_route_rule;

static const auth_route_rule auth_routes[] = {
    /* OIP server metadata and health: always open (probes, load balancers). */
    {"GET", "/v2", AUTH_NEED_OPEN},
    {"GET", "/v2/health/live", AUTH_NEED_OPEN},
    {"GET", "/v2/health/ready", AUTH_NEED_OPEN},
    /* Triton extensions: repository (index reads, load/unload deploys) and statistics. */
    {"POST", "/v2/repository/index", AUTH_NEED_READ},
    {"POST", "/v2/repository/models/*/load", AUTH_NEED_DEPLOY},
    {"POST", "/v2/repository/models/*/unload", AUTH_NEED_DEPLOY},
    {"GET", "/v2/models/stats", AUTH_NEED_READ},
    {"GET", "/v2/models/*/stats", AUTH_NEED_READ},
    {"GET", "/v2/models/*/versions/*/stats", AUTH_NEED_READ},
    /* Data plane: model metadata, readiness, infer, async jobs, seed-style /predict. */
    {"*", "/v2/models/**", AUTH_NEED_INFER},
    {"*", "/v2/jobs/**", AUTH_NEED_INFER},
    {"*", "/predict/**", AUTH_NEED_INFER},
    /* Models: reading is viewer, changing the code that runs is admin. */
    {"GET", "/models", AUTH_NEED_READ},
    {"GET", "/models/stats", AUTH_NEED_READ},
    {"GET", "/models/**", AUTH_NEED_READ},
    {"POST", "/models", AUTH_NEED_ADMIN},
    {"PUT", "/models/*/versions/*", AUTH_NEED_ADMIN},
    {"DELETE", "/models/*/versions/*", AUTH_NEED_ADMIN},
    /* Deployments: reading is viewer; deploy, undeploy, traffic, promote, rollback, limits are
     * deployer. */
    {"GET", "/deployments/**", AUTH_NEED_READ},
    {"POST", "/deployments/deploy", AUTH_NEED_DEPLOY},
    {"POST", "/deployments/undeploy", AUTH_NEED_DEPLOY},
    {"PUT", "/deployments/*/traffic", AUTH_NEED_DEPLOY},
    {"POST", "/deployments/*/promote", AUTH_NEED_DEPLOY},
    {"POST", "/deployments/*/rollback", AUTH_NEED_DEPLOY},
    {"PUT", "/deployments/*/*/limits", AUTH_NEED_DEPLOY},
    /* Observability and API description. */
    {"GET", "/metrics", AUTH_NEED_READ},
    {"GET", "/openapi.json", AUTH_NEED_READ},
    {"GET", "/docs/**", AUTH_NEED_READ},
    /* Identity and tokens. */
    {"GET", "/auth/whoami", AUTH_NEED_TOKEN},
    {"*", "/tokens/**", AUTH_NEED_ADMIN},
    /* The dashboard's static files; then everything else is closed. */
    {"GET", "/**", AUTH_NEED_OPEN},
    {"*", "/**", AUTH_NEED_ADMIN},
};

static bool auth_method_matches(const char *rule, const char *method)
{
    if (strcmp(rule, "*") == 0 || strcmp(rule, method) == 0)
        return true;
    return strcmp(rule, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

/* Next segment of a path or pattern: skips slashes, returns its start and sets *len (0 = end). */
static const char *auth_segment(const char *p, size_t *len)
{
    while (*p == '/')
        p++;
    *len = strcspn(p, "/");
    return p;
}

static bool auth_path_matches(const char *pattern, const char *path)
{
    size_t plen, slen;
    const char *p = auth_segment(pattern, &plen);
    const char *s = auth_segment(path, &slen);
    for (;;) {
        if (plen == 2 && strncmp(p, "**", 2) == 0)
            return true;
        if (plen == 0 || slen == 0)
            return plen == 0 && slen == 0;
        if (!(plen == 1 && *p == '*') && (plen != slen || strncmp(p, s, plen) != 0))
            return false;
        p = auth_segment(p + plen, &plen);
        s = auth_segment(s + slen, &slen);
    }
}

auth_need auth_route_need(const char *method, const char *path)
{
    for (size_t i = 0; i < sizeof auth_routes / sizeof auth_routes[0]; i++)
        if (auth_method_matches(auth_routes[i].method, method) &&
            auth_path_matches(auth_routes[i].pattern, path))
            return auth_routes[i].need;
    return AUTH_NEED_ADMIN; /* unreachable: the last row matches everything */
}

bool auth_method_is_safe(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
           strcmp(method, "OPTIONS") == 0;
}

/* Split "name[:port]" or "[v6][:port]" into the bare name; false when malformed. */
static bool auth_host_name(const char *host, char *out, size_t len)
{
    const char *end;
    if (host[0] == '[') {
        end = strchr(host, ']');
        if (end == NULL || (end[1] != '\0' && end[1] != ':'))
            return false;
        end++;
    } else {
        end = strchr(host, ':');
        if (end == NULL)
            end = host + strlen(host);
    }
    size_t n = (size_t)(end - host);
    if (n == 0 || n >= len)
        return false;
    for (const char *p = end[0] == ':' ? end + 1 : end; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    memcpy(out, host, n);
    out[n] = '\0';
    return true;
}

/* 127.0.0.0/8 in dotted-decimal (inet_pton: exactly four decimal parts of 0-255, no signs,
 * spaces or leading zeros; sscanf took those and cost ~1 us on every request). */
static bool auth_is_ipv4_loopback(const char *name)
{
    struct in_addr a;
    return inet_pton(AF_INET, name, &a) == 1 && ((const unsigned char *)&a.s_addr)[0] == 127;
}

bool auth_host_is_loopback(const char *host)
{
    char name[256];
    if (host == NULL || !auth_host_name(host, name, sizeof name))
        return false;
    size_t n = strlen(name);
    if (name[n - 1] == '.') /* "localhost." is the same name */
        name[--n] = '\0';
    if (strcasecmp(name, "localhost") == 0 || strcasecmp(name, "[::1]") == 0)
        return true;
    if (n > 10 && strcasecmp(name + n - 10, ".localhost") == 0)
        return true; /* RFC 6761: every *.localhost name resolves to loopback */
    return auth_is_ipv4_loopback(name);
}

bool auth_address_is_loopback(const char *host)
{
    if (host == NULL)
        return false;
    if (strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0)
        return true;
    return strchr(host, ':') == NULL && auth_host_is_loopback(host);
}

bool auth_origin_is_same(const char *origin, const char *host, bool tls)
{
    if (origin == NULL || host == NULL)
        return false;
    const char *scheme = tls ? "https://" : "http://";
    size_t n = strlen(scheme);
    return strncasecmp(origin, scheme, n) == 0 && strcasecmp(origin + n, host) == 0;
}

bool auth_origin_listed(const char *origin, const char *list)
{
    if (origin == NULL || list == NULL)
        return false;
    size_t olen = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ')
            m--;
        if (m > 0 && ((m == 1 && *p == '*') || (m == olen && strncasecmp(p, origin, m) == 0)))
            return true;
        p += n;
    }
    return false;
}
