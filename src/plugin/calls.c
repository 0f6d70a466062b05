/*
 * proxy_http_call and its answer (the import table is in abi.c): from an
 * HTTP context the exchange's side dispatches the call (the answer comes to
 * that context), from a root context the worker's side does (the answer
 * comes to that root context on the same instance, or is dropped if the
 * instance was rebuilt or the worker took another configuration since).
 */
#include "core/arena.h"
#include "core/log.h"
#include "plugin/plugin_int.h"

#include <stdio.h>

/* proxy_http_call from an HTTP context (the exchange's side dispatches it
 * to the named upstream; the answer comes in proxy_on_http_call_response
 * on the same context) or from a root context (on_tick, on_queue_ready,
 * a root's own call answer, configure when the instance is rebuilt on its
 * worker, or after proxy_set_effective_context to a root): the worker's
 * side dispatches it, the answer comes to that root context on the same
 * instance. Request trailers are not sent. */
uint32_t arc_pl__h_http_call(void *e, uint32_t up, uint32_t upl, uint32_t hp, uint32_t hl,
                             uint32_t bp, uint32_t bl, uint32_t tp, uint32_t tl, uint32_t timeout,
                             uint32_t ret)
{
    struct arc_pl_inst *in = e;
    const uint8_t *u = arc_pl__gmem(in, up, upl), *b = arc_pl__gmem(in, bp, bl);
    if (!u || !b || !arc_pl__gmem(in, hp, hl) || !arc_pl__gmem(in, tp, tl) ||
        !arc_pl__gmem(in, ret, 4))
        return WR_INVALID_MEMORY;
    struct arc_pl_ctx *c = in->cur;
    struct arc_pl_run *r = c ? c->run : NULL;
    struct arc_pl_wslot *s = in->slot;
    arc_pl_dispatch_fn fn;
    void *owner;
    if (c) {
        if (!r || !r->dispatch || (!r->map && !r->body && !r->paused))
            return WR_BAD_ARGUMENT;     /* (only from an exchange's callback, or paused) */
        fn = r->dispatch;
        owner = r->owner;
    } else {
        /* A root context: only on a worker running this configuration
         * (not while the control thread builds the set), within the
         * instance's bound. */
        if (!in->root_now || !s->root_call || in->root_calls >= in->pl->max_root_calls)
            return WR_BAD_ARGUMENT;
        fn = s->root_call;
        owner = s->root_owner;
    }
    if (bl > in->pl->max_call_body)
        return WR_BAD_ARGUMENT;         /* (the same bound as the answer's body) */
    struct arc_arena tmp;
    arc_arena_init(&tmp, 1024);         /* (the dispatch copies what it keeps) */
    struct arc_pl_hmap h = { .arena = r ? r->arena : &tmp };
    uint32_t rc = arc_pl__parse_pairs(in, hp, hl, &h, true);
    if (rc == WR_OK && (!arc_pl_hmap_get(&h, ":method", 7) || !arc_pl_hmap_get(&h, ":path", 5) ||
                        !arc_pl_hmap_get(&h, ":authority", 10)))
        rc = WR_BAD_ARGUMENT;
    uint32_t tok = 0;
    if (rc == WR_OK) {
        tok = ++in->next_token;
        if (tok == 0)
            tok = ++in->next_token;
        const struct arc_pl_caller who = { .inst = in, .ctx_id = c ? c->id : in->root_now,
                                           .gen = in->gen, .token = tok, .root = !c };
        const struct arc_pl_call_req req = {
            .upstream = { (const char *)u, upl }, .hdrs = &h, .body = { (const char *)b, bl },
            .timeout_ms = timeout, .max_body = in->pl->max_call_body,
        };
        rc = fn(owner, &req, &who);
    }
    arc_arena_dispose(&tmp);
    if (rc != WR_OK)
        return rc;
    if (!c)
        in->root_calls++;
    arc_pl__put_u32(in, ret, tok);
    return WR_OK;
}

/* The answer to a root context's call. */
static void root_call_done(struct arc_pl_inst *in, const struct arc_pl_caller *who,
                           const struct arc_pl_call_resp *resp)
{
    in->root_calls--;
    const char *gone = NULL;
    if (in->dead || in->gen != who->gen)
        gone = "the instance was discarded since (a trap or a budget overrun)";
    else if (!in->slot->root_call)
        gone = "the worker runs a newer configuration";
    if (gone) {
        /* Never to another instance or configuration: the call belongs
         * to the one that made it. */
        arc_log(ARC_LOG_WARN, "plugin '%s': the answer to proxy_http_call %u of root "
                "context %u was dropped: %s", in->pl->name, who->token, who->ctx_id, gone);
        return;
    }
    uint32_t nh = resp->ok && resp->hdrs ? (uint32_t)resp->hdrs->n : 0;
    uint32_t nt = resp->ok && resp->trailers ? (uint32_t)resp->trailers->n : 0;
    in->cur = NULL;
    in->root_now = who->ctx_id;
    in->call_resp = resp;
    int code = arc_pl__call5(in, PLX_ON_HTTP_CALL_RESPONSE, who->ctx_id, who->token, nh,
                             resp->ok ? (uint32_t)resp->body.len : 0, nt);
    in->call_resp = NULL;
    in->cur = NULL;
    in->root_now = 0;
    if (code)
        fprintf(stderr, "arc: plugin '%s' failed in proxy_on_http_call_response: %s\n",
                in->pl->name, arc_pl__trap_text(code));
    if (in->slot->queue_ready)
        arc_pl__queues_deliver(in->slot);
}

void arc_pl_http_call_done(const struct arc_pl_caller *who, const struct arc_pl_call_resp *resp)
{
    struct arc_pl_inst *in = who->inst;
    if (who->root) {
        root_call_done(in, who, resp);
        return;
    }
    if (in->dead || in->gen != who->gen)
        return;                         /* the instance was discarded since */
    struct arc_pl_ctx *c = in->live;
    while (c && c->id != who->ctx_id)
        c = c->live_next;
    if (!c)
        return;                         /* the calling exchange ended */
    struct arc_pl_run *r = c->run;
    uint32_t nh = resp->ok && resp->hdrs ? (uint32_t)resp->hdrs->n : 0;
    uint32_t nt = resp->ok && resp->trailers ? (uint32_t)resp->trailers->n : 0;
    in->cur = c;
    in->call_resp = resp;
    int code = arc_pl__call5(in, PLX_ON_HTTP_CALL_RESPONSE, c->id, who->token, nh,
                             resp->ok ? (uint32_t)resp->body.len : 0, nt);
    in->call_resp = NULL;
    in->cur = NULL;
    in->root_now = 0;
    if (code) {
        fprintf(stderr, "arc: plugin '%s' failed in proxy_on_http_call_response: %s\n",
                in->pl->name, arc_pl__trap_text(code));
        if (r->paused && &r->ctx[r->next] == c && !r->pfail) {
            r->pfail = code;            /* the paused request gets the failure policy */
            if (r->notify)
                r->notify(r->owner);
        }
    }
    if (in->slot->queue_ready)
        arc_pl__queues_deliver(in->slot);
}
