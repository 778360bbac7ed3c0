/*
 * Unit tests for src/http/conn_guard.c: the per-address cap closes the address's oldest waiting
 * connection (or refuses the new one when all of its connections are busy), the reserve closes
 * the oldest waiting connection anywhere (new before body before kept-alive), kicked and closed
 * connections stop counting, and the real kick shuts down exactly the server-side socket of a
 * loopback connection. The policy tests use a recording kick.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_guard.h"

typedef struct kicks {
    int n;
    conn_peer last[16];
} kicks;

static void record_kick(const conn_peer *peer, void *ud)
{
    kicks *k = ud;
    if (k->n < 16)
        k->last[k->n] = *peer;
    k->n++;
}

static conn_peer peer(const char *addr, int port)
{
    conn_peer p = {.port = port, .local_port = 8080};
    snprintf(p.addr, sizeof p.addr, "%s", addr);
    return p;
}

static int open_conn(conn_guard *g, const char *addr, int port, uint64_t now, bool *refused)
{
    conn_peer p = peer(addr, port);
    return conn_guard_open(g, &p, now, refused);
}

static void test_cap_closes_the_addresses_oldest_waiting_connection(void **state)
{
    (void)state;
    kicks k = {0};
    conn_guard *g =
        conn_guard_new(&(conn_guard_config){.slots = 64, .max_per_client = 3}, record_kick, &k);
    bool refused;
    int a = open_conn(g, "10.0.0.1", 1, 1, &refused);
    int b = open_conn(g, "10.0.0.1", 2, 2, &refused);
    open_conn(g, "10.0.0.1", 3, 3, &refused);
    open_conn(g, "10.0.0.2", 9, 4, &refused); /* another address does not count */
    assert_int_equal(k.n, 0);
    conn_guard_set_state(g, a, CONN_BUSY, 5); /* a is serving a request: not a victim */
    int d = open_conn(g, "10.0.0.1", 4, 6, &refused);
    assert_false(refused);
    assert_true(d >= 0);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.last[0].port, 2); /* b: the oldest waiting one */
    conn_guard_close(g, b);
    conn_guard_stats st;
    conn_guard_get_stats(g, &st);
    assert_int_equal(st.open, 4);
    assert_int_equal(st.evicted, 1);
    conn_guard_free(g);
}

static void test_cap_refuses_a_new_connection_when_all_are_busy(void **state)
{
    (void)state;
    kicks k = {0};
    conn_guard *g =
        conn_guard_new(&(conn_guard_config){.slots = 64, .max_per_client = 2}, record_kick, &k);
    bool refused;
    conn_guard_set_state(g, open_conn(g, "::1", 1, 1, &refused), CONN_BUSY, 1);
    conn_guard_set_state(g, open_conn(g, "::1", 2, 1, &refused), CONN_BUSY, 1);
    assert_int_equal(open_conn(g, "::1", 3, 2, &refused), -1);
    assert_true(refused);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.last[0].port, 3);
    conn_guard_stats st;
    conn_guard_get_stats(g, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.open, 3); /* the refused one until CivetWeb reports its close */
    conn_guard_free(g);
}

static void test_reserve_closes_the_oldest_waiting_connection_anywhere(void **state)
{
    (void)state;
    kicks k = {0};
    conn_guard *g = conn_guard_new(&(conn_guard_config){.slots = 4, .reserve = 1}, record_kick, &k);
    bool refused;
    int a = open_conn(g, "10.0.0.1", 1, 1, &refused);
    open_conn(g, "10.0.0.2", 2, 2, &refused);
    int c = open_conn(g, "10.0.0.3", 3, 3, &refused);
    assert_int_equal(k.n, 0);
    assert_true(conn_guard_pressure(g));
    conn_guard_set_state(g, a, CONN_BODY, 4); /* reading a body: evicted after idle ones */
    conn_guard_set_state(g, c, CONN_BUSY, 4);
    assert_false(conn_guard_pressure(g));
    open_conn(g, "10.0.0.4", 4, 5, &refused);
    open_conn(g, "10.0.0.5", 5, 6, &refused);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.last[0].port, 2); /* idle before body, even though a is older */
    open_conn(g, "10.0.0.6", 6, 7, &refused);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.last[1].port, 4);
    conn_guard_free(g);
}

static void test_kept_alive_connections_are_evicted_last(void **state)
{
    (void)state;
    kicks k = {0};
    conn_guard *g = conn_guard_new(&(conn_guard_config){.slots = 3, .reserve = 1}, record_kick, &k);
    bool refused;
    int a = open_conn(g, "10.0.0.1", 1, 1, &refused);
    conn_guard_set_state(g, a, CONN_BUSY, 2);
    conn_guard_set_state(g, a, CONN_KEEPALIVE, 3); /* served once, waits for the next request */
    int b = open_conn(g, "10.0.0.2", 2, 4, &refused);
    conn_guard_set_state(g, b, CONN_BODY, 5);
    open_conn(g, "10.0.0.3", 3, 6, &refused); /* 3 waiting > 2: the body reader goes first */
    assert_int_equal(k.n, 1);
    assert_int_equal(k.last[0].port, 2);
    open_conn(g, "10.0.0.4", 4, 7, &refused); /* then the never-served one */
    assert_int_equal(k.last[1].port, 3);
    int e = open_conn(g, "10.0.0.5", 5, 8, &refused);
    assert_int_equal(k.last[2].port, 4);
    conn_guard_set_state(g, e, CONN_BUSY, 9);
    conn_guard_set_state(g, e, CONN_KEEPALIVE, 10);
    open_conn(g, "10.0.0.6", 6, 11, &refused); /* only kept-alive ones: the older goes */
    assert_int_equal(k.n, 4);
    assert_int_equal(k.last[3].port, 1);
    conn_guard_free(g);
}

static void test_kicked_connection_ignores_later_state_changes(void **state)
{
    (void)state;
    kicks k = {0};
    conn_guard *g = conn_guard_new(&(conn_guard_config){.slots = 2, .reserve = 1}, record_kick, &k);
    bool refused;
    int a = open_conn(g, "10.0.0.1", 1, 1, &refused);
    int b = open_conn(g, "10.0.0.1", 2, 2, &refused);
    assert_int_equal(k.n, 1);
    conn_guard_set_state(g, a, CONN_BUSY, 3);
    conn_guard_set_state(g, a, CONN_IDLE, 4); /* still kicked: does not count as waiting */
    conn_guard_stats st;
    conn_guard_get_stats(g, &st);
    assert_int_equal(st.waiting, 1);
    conn_guard_close(g, a);
    conn_guard_close(g, b);
    conn_guard_get_stats(g, &st);
    assert_int_equal(st.open, 0);
    assert_int_equal(st.waiting, 0);
    conn_guard_free(g);
}

static void test_kick_socket_shuts_down_the_server_side_of_a_connection(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct sockaddr_in client;
    len = sizeof client;
    int sfd = accept(lfd, (struct sockaddr *)&client, &len);
    assert_true(sfd >= 0);

    conn_peer p = peer("127.0.0.1", ntohs(client.sin_port));
    p.local_port = ntohs(sa.sin_port);
    conn_peer wrong = p;
    wrong.port = p.port == 1 ? 2 : 1;
    assert_int_equal(conn_guard_kick_socket(&wrong), -1);
    assert_int_equal(conn_guard_kick_socket(&p), 0);
    char c;
    assert_int_equal(recv(cfd, &c, 1, 0), 0); /* the client sees end-of-file */
    close(cfd);
    close(sfd);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_closes_the_addresses_oldest_waiting_connection),
        cmocka_unit_test(test_cap_refuses_a_new_connection_when_all_are_busy),
        cmocka_unit_test(test_reserve_closes_the_oldest_waiting_connection_anywhere),
        cmocka_unit_test(test_kept_alive_connections_are_evicted_last),
        cmocka_unit_test(test_kicked_connection_ignores_later_state_changes),
        cmocka_unit_test(test_kick_socket_shuts_down_the_server_side_of_a_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
