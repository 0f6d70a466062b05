// proxy-wasm filter with the AssemblyScript SDK (@solo-io/proxy-runtime 0.1.8):
// adds "x-as-filter: <plugin configuration>" to the request, removes
// "x-remove-me" from it, answers 403 when the request carries
// "x-deny: yes", and adds "x-as-response: 1" to the response (removing
// the upstream's "server" field).
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues,
         stream_context, send_local_response, GrpcStatusValues } from "@solo-io/proxy-runtime";

class HeadersRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Headers(context_id, this);
  }
}

class Headers extends Context {
  constructor(context_id: u32, root_context: HeadersRoot) {
    super(context_id, root_context);
  }
  onRequestHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    if (stream_context.headers.request.get("x-deny") == "yes") {
      send_local_response(403, "denied by as filter", String.UTF8.encode("denied by the as filter\n"),
                          [], GrpcStatusValues.Unknown);
      return FilterHeadersStatusValues.StopIteration;
    }
    stream_context.headers.request.add("x-as-filter", this.root_context.getConfiguration());
    stream_context.headers.request.remove("x-remove-me");
    return FilterHeadersStatusValues.Continue;
  }
  onResponseHeaders(n: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-as-response", "1");
    stream_context.headers.response.remove("server");
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new HeadersRoot(context_id); }, "as_headers");
