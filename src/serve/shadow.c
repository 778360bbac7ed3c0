/*
 * shadow: background copies of unversioned requests to a model's shadow version (contract in
 * shadow.h). The queue is a FIFO of malloc'd entries guarded by `lock`; `count` bounds it.
 */
#include "shadow.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "reply.h"
#include "phase_stats.h"

typedef struct shadow_item {
    char model[REG_NAME_MAX + 1];
    char version[REG_NAME_MAX + 1];
    char *body; /* request body, then the primary's answer, in one allocation */
    size_t body_len, header_len;
    int primary_status;
    char *primary;
    size_t primary_len, primary_json_len;
    struct shadow_item *next;
} shadow_item;

struct shadow {
    deploy_manager *deploy;
    size_t max_queue;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;
    bool stop;
    shadow_item *head, *tail;
    size_t count;
    unsigned long long done;
};

/* ---- comparison ---------------------------------------------------------------------------- */

static cJSON *shadow_outputs(const char *body, size_t json_len, cJSON **root)
{
    *root = cJSON_ParseWithLength(body, json_len);
    return cJSON_GetObjectItemCaseSensitive(*root, "outputs");
}

bool shadow_same(int status_a, const char *a, size_t a_len, size_t a_json, int status_b,
                 const char *b, size_t b_len, size_t b_json)
{
    if (status_a != status_b)
        return false;
    if (status_a < 200 || status_a >= 300)
        return true; /* both failed the same way: the message may name the version */
    if (a_len - a_json != b_len - b_json || memcmp(a + a_json, b + b_json, a_len - a_json) != 0)
        return false;
    cJSON *ra, *rb;
    const cJSON *oa = shadow_outputs(a, a_json, &ra), *ob = shadow_outputs(b, b_json, &rb);
    bool same = oa != NULL && ob != NULL && cJSON_Compare(oa, ob, true);
    cJSON_Delete(ra);
    cJSON_Delete(rb);
    return same;
}

/* ---- worker -------------------------------------------------------------------------------- */

static void shadow_run(shadow *s, const shadow_item *it)
{
    deployment *d = deploy_acquire(s->deploy, it->model, it->version, NULL);
    if (d == NULL)
        return; /* the shadow was undeployed meanwhile: nothing to count it in */
    const deploy_target *t = deploy_target_of(d);
    ds_buf out = DS_BUF_INIT;
    http_response resp = {.status = 0, .content_type = "application/json", .body = &out};
    infer_input in = {.body = it->body, .len = it->body_len, .header_len = it->header_len};
    infer_oip_input(t, &in, &resp);
    bool same =
        !out.failed && shadow_same(it->primary_status, it->primary, it->primary_len,
                                   it->primary_json_len, resp.status, out.data ? out.data : "",
                                   out.len, infer_response_json_len(&resp, out.len));
    phase_stats_shadow(t->phases, !same);
    buf_free(&out);
    deploy_release(d);
}

static void *shadow_worker(void *arg)
{
    shadow *s = arg;
    /* SCHED_IDLE: a shadow copy runs only on CPU time nobody else wants, so on a busy machine the
     * client's requests never wait behind shadows (their copies queue up and are dropped
     * instead). Not fatal when refused. */
    struct sched_param idle = {.sched_priority = 0};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
    pthread_mutex_lock(&s->lock);
    while (true) {
        while (!s->stop && s->head == NULL)
            pthread_cond_wait(&s->wake, &s->lock);
        if (s->stop)
            break;
        shadow_item *it = s->head;
        s->head = it->next;
        if (s->head == NULL)
            s->tail = NULL;
        s->count--;
        pthread_mutex_unlock(&s->lock);
        shadow_run(s, it);
        free(it->body);
        free(it);
        pthread_mutex_lock(&s->lock);
        s->done++;
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

int shadow_new(size_t max_queue, int workers, deploy_manager *m, shadow **out)
{
    *out = NULL;
    shadow *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -1;
    s->deploy = m;
    s->max_queue = max_queue ? max_queue : 1000;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    int n = workers > 0 ? workers : 1;
    s->threads = calloc((size_t)n, sizeof *s->threads);
    for (int i = 0; s->threads != NULL && i < n; i++) {
        if (pthread_create(&s->threads[i], NULL, shadow_worker, s) != 0)
            break;
        s->nthreads++;
    }
    if (s->nthreads != n) {
        shadow_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void shadow_free(shadow *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    for (shadow_item *it = s->head, *next; it != NULL; it = next) {
        next = it->next;
        free(it->body);
        free(it);
    }
    free(s->threads);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* Count a dropped copy in the shadow version's stats (if it is still deployed). */
static bool shadow_drop(shadow *s, const shadow_copy *c)
{
    deployment *d = deploy_acquire(s->deploy, c->model, c->version, NULL);
    if (d != NULL) {
        phase_stats_shadow_dropped(deploy_target_of(d)->phases);
        deploy_release(d);
    }
    return false;
}

bool shadow_offer(shadow *s, const shadow_copy *c)
{
    pthread_mutex_lock(&s->lock);
    bool full = s->count >= s->max_queue || s->stop;
    pthread_mutex_unlock(&s->lock);
    if (full)
        return shadow_drop(s, c);
    size_t primary_len = c->primary_len;
    for (unsigned i = 0; c->primary_tail != NULL && i < c->primary_tail_count; i++)
        primary_len += c->primary_tail[i].len;
    shadow_item *it = calloc(1, sizeof *it);
    char *mem = it ? malloc(c->body_len + primary_len + 2) : NULL;
    if (mem == NULL) {
        free(it);
        return shadow_drop(s, c);
    }
    memcpy(mem, c->body, c->body_len);
    mem[c->body_len] = '\0';
    char *w = mem + c->body_len + 1;
    memcpy(w, c->primary_body, c->primary_len);
    w += c->primary_len;
    for (unsigned i = 0; c->primary_tail != NULL && i < c->primary_tail_count; i++) {
        memcpy(w, c->primary_tail[i].data, c->primary_tail[i].len);
        w += c->primary_tail[i].len;
    }
    *w = '\0';
    snprintf(it->model, sizeof it->model, "%s", c->model);
    snprintf(it->version, sizeof it->version, "%s", c->version);
    it->body = mem;
    it->body_len = c->body_len;
    it->header_len = c->header_len;
    it->primary_status = c->primary_status;
    it->primary = mem + c->body_len + 1;
    it->primary_len = primary_len;
    it->primary_json_len = c->primary_json_len;
    pthread_mutex_lock(&s->lock);
    if (s->count >= s->max_queue || s->stop) { /* filled up while we copied */
        pthread_mutex_unlock(&s->lock);
        free(mem);
        free(it);
        return shadow_drop(s, c);
    }
    if (s->tail != NULL)
        s->tail->next = it;
    else
        s->head = it;
    s->tail = it;
    s->count++;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return true;
}

unsigned long long shadow_done(shadow *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned long long n = s->done;
    pthread_mutex_unlock(&s->lock);
    return n;
}
