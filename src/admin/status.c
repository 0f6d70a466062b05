/*
 * What the admin listener shows besides the Prometheus text: the names
 * metrics rows are labelled with. See admin_int.h.
 */
#include "admin/admin_int.h"
#include "config/snapshot.h"

#include <stdlib.h>
#include <string.h>

void arc_admin__names(struct arc_admin_names *n, const struct arc_snapshot *s)
{
    memset(n, 0, sizeof(*n));
    size_t n_eps = 0;
    for (size_t u = 0; u < s->n_ups; u++)
        n_eps += s->ups[u].n_eps;
    n->ep_ids = calloc(n_eps ? n_eps : 1, sizeof(*n->ep_ids));
    n->ep_up = calloc(n_eps ? n_eps : 1, sizeof(*n->ep_up));
    n->ep_names = calloc(n_eps ? n_eps : 1, sizeof(*n->ep_names));
    size_t nl = s->cfg->n_listeners;
    n->listener_names = calloc(nl ? nl : 1, sizeof(*n->listener_names));
    ARC_ASSERT(n->ep_ids && n->ep_up && n->ep_names && n->listener_names);
    size_t e = 0;
    for (size_t u = 0; u < s->n_ups; u++)
        for (size_t i = 0; i < s->ups[u].n_eps; i++, e++) {
            n->ep_ids[e] = s->ups[u].eps[i].id;
            n->ep_up[e] = (uint32_t)u;
            n->ep_names[e] = s->ups[u].eps[i].text;
        }
    for (size_t l = 0; l < nl; l++)
        n->listener_names[l] = s->cfg->listeners[l].name;
    n->m = (struct arc_m_names){
        .route_ids = s->route_ids, .route_names = s->route_names, .n_routes = s->n_routes,
        .up_ids = s->upstream_ids, .up_names = s->upstream_names, .n_ups = s->n_ups,
        .ep_ids = n->ep_ids, .ep_up = n->ep_up, .ep_names = n->ep_names, .n_eps = n_eps,
        .listener_names = n->listener_names, .n_listeners = nl,
    };
}

void arc_admin__names_dispose(struct arc_admin_names *n)
{
    free(n->ep_ids);
    free(n->ep_up);
    free(n->ep_names);
    free(n->listener_names);
    memset(n, 0, sizeof(*n));
}
